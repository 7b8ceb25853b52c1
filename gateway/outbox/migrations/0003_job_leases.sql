-- Named leases of periodic jobs (the backfill reconciler): one holder at a time per name.
CREATE TABLE job_leases (
    name text PRIMARY KEY,
    holder text NOT NULL,
    until float8 NOT NULL
);

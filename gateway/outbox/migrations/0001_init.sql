-- The PostgreSQL outbox, version 1: the SQLite file's tables, shared by every replica.
-- Times are float Unix seconds (the protocol's injected clock), as in SQLite.
CREATE TABLE meta (key text PRIMARY KEY, value text NOT NULL);

CREATE SEQUENCE webhook_ids;
CREATE TABLE webhooks (
    id bigint PRIMARY KEY DEFAULT nextval('webhook_ids'),
    source text NOT NULL,
    provider text NOT NULL,
    received_at float8 NOT NULL,
    headers bytea NOT NULL,
    query bytea NOT NULL,
    body bytea NOT NULL,
    sealed smallint NOT NULL,
    status text NOT NULL CHECK (status IN ('accepted', 'quarantined', 'resolved')),
    error text,
    detail text
);
ALTER SEQUENCE webhook_ids OWNED BY webhooks.id;
CREATE INDEX webhooks_quarantined ON webhooks (id) WHERE status = 'quarantined';
CREATE INDEX webhooks_received ON webhooks (received_at) WHERE status <> 'quarantined';

-- Every claim and ack writes a new version of an events row: payloads live in their own table
-- so that version is small, and autovacuum visits the churning table early.
CREATE SEQUENCE event_seqs;
CREATE TABLE events (
    seq bigint PRIMARY KEY DEFAULT nextval('event_seqs'),
    webhook_id bigint NOT NULL,
    event_id text,
    name text NOT NULL,
    size integer NOT NULL,
    sealed smallint NOT NULL,
    state text NOT NULL CHECK (state IN ('pending', 'leased', 'delivered', 'dead')),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at float8 NOT NULL,
    lease_until float8,
    lease_token text,  -- the claim that holds the lease (see common.Leases)
    last_error text,
    created_at float8 NOT NULL,
    delivered_at float8
) WITH (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);
ALTER SEQUENCE event_seqs OWNED BY events.seq;
CREATE INDEX events_pending ON events (seq) INCLUDE (next_attempt_at, attempts)
    WHERE state = 'pending';
CREATE INDEX events_retry ON events (next_attempt_at) WHERE state = 'pending';
CREATE INDEX events_leased ON events (lease_until) WHERE state = 'leased';
CREATE INDEX events_dead ON events (seq) WHERE state = 'dead';
CREATE INDEX events_delivered ON events (delivered_at) WHERE state = 'delivered';
CREATE INDEX events_webhook ON events (webhook_id, seq);

CREATE TABLE event_payloads (seq bigint PRIMARY KEY, payload bytea NOT NULL);

CREATE TABLE dedup (
    event_id text PRIMARY KEY,
    first_seen float8 NOT NULL,
    seq bigint NOT NULL
);
CREATE INDEX dedup_first_seen ON dedup (first_seen);

CREATE TABLE encryption_keys (key_id bytea PRIMARY KEY, first_used float8 NOT NULL);

CREATE TABLE attempts (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    seq bigint NOT NULL,
    at float8 NOT NULL,
    outcome text NOT NULL,
    error text
);
CREATE INDEX attempts_seq ON attempts (seq);

CREATE TABLE rejections (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source text NOT NULL,
    provider text NOT NULL,
    received_at float8 NOT NULL,
    status integer NOT NULL,
    reason text NOT NULL,
    message text NOT NULL,
    headers bytea NOT NULL,
    body bytea NOT NULL,
    body_size integer NOT NULL,
    request_id text NOT NULL,
    sealed smallint NOT NULL
);
CREATE INDEX rejections_received ON rejections (received_at);

-- /readyz writes here: one row per replica, so replicas do not queue on one row's lock
CREATE TABLE heartbeat (
    replica text PRIMARY KEY,
    at float8 NOT NULL,
    pid integer NOT NULL
);

-- Version 2 keeps the Event API's answer (HTTP status, latency) to each attempt: in attempts
-- for failed ones, beside delivered_at for the delivery (SQLite's schema 4). Older rows have none.
-- Nullable columns without a default: PostgreSQL adds them without rewriting the tables.
ALTER TABLE events ADD COLUMN delivery_status integer, ADD COLUMN delivery_ms float8;
ALTER TABLE attempts ADD COLUMN status integer, ADD COLUMN latency_ms float8;

-- The event plane moves out of D1: each connection's Durable Object holds its
-- cursors, runs and event index, and R2 its archived pages. D1 keeps the
-- control plane. The connection's row carries what the API lists (copied by
-- the object as it pulls), the generation that fences a pull's writes
-- against an admin's changes, and the object's next alarm for the cron's
-- watchdog.
ALTER TABLE connections ADD COLUMN backfill_total INTEGER NOT NULL DEFAULT 0;
ALTER TABLE connections ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
ALTER TABLE connections ADD COLUMN alarm_at TEXT;
UPDATE connections SET backfill_total = (SELECT coalesce(sum(backfill_total), 0) FROM cursors WHERE cursors.connection_id = connections.id);
-- One writer per connection by construction: leases go.
DROP TABLE leases;
-- cursors, events and pull_runs stay until each connection's object has
-- moved its rows into the new plane (see connection_object::upgrade); an
-- emptied deployment has them empty.

-- The client-credentials method joins oauth and basic. SQLite cannot change a
-- CHECK constraint, so the connections table is rebuilt. Dropping the old
-- table runs an implicit DELETE whose ON DELETE CASCADE would take the
-- sealed secrets with it (deferring foreign keys defers checks, not
-- actions), so they are kept aside and put back.
PRAGMA defer_foreign_keys = true;
CREATE TABLE secrets_kept AS SELECT * FROM connection_secrets;
CREATE TABLE connections_next (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL COLLATE NOCASE UNIQUE,
  instance_url TEXT NOT NULL,
  username TEXT NOT NULL,
  method TEXT NOT NULL CHECK (method IN ('oauth', 'client_credentials', 'basic')),
  client_id TEXT,
  enabled INTEGER NOT NULL DEFAULT 1,
  status TEXT NOT NULL CHECK (status IN ('connected', 'error', 'disabled')),
  status_code TEXT,
  status_message TEXT,
  status_since TEXT,
  warnings TEXT NOT NULL DEFAULT '[]',
  release TEXT,
  build TEXT,
  created_at TEXT NOT NULL,
  last_pull_at TEXT,
  next_pull_at TEXT,
  backfill_from TEXT NOT NULL,
  backfill_to TEXT NOT NULL,
  backfill_done INTEGER NOT NULL DEFAULT 0,
  event_count INTEGER NOT NULL DEFAULT 0,
  backfill_total INTEGER NOT NULL DEFAULT 0,
  generation INTEGER NOT NULL DEFAULT 0,
  alarm_at TEXT,
  UNIQUE (instance_url, username)
);
INSERT INTO connections_next (id, name, instance_url, username, method, client_id, enabled, status, status_code, status_message, status_since, warnings, release, build, created_at, last_pull_at, next_pull_at, backfill_from, backfill_to, backfill_done, event_count, backfill_total, generation, alarm_at)
  SELECT id, name, instance_url, username, method, client_id, enabled, status, status_code, status_message, status_since, warnings, release, build, created_at, last_pull_at, next_pull_at, backfill_from, backfill_to, backfill_done, event_count, backfill_total, generation, alarm_at FROM connections;
DROP TABLE connections;
ALTER TABLE connections_next RENAME TO connections;
DELETE FROM connection_secrets;
INSERT INTO connection_secrets SELECT * FROM secrets_kept;
DROP TABLE secrets_kept;

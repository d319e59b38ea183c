-- Abuse limits that hold under concurrency. `audited` counts the refusals
-- of the window written to the audit log one by one; the rest
-- (failures - audited) are summarised by the cron when the window ends.
-- The row keyed '*' counts the whole deployment's window.
ALTER TABLE auth_failures ADD COLUMN audited INTEGER NOT NULL DEFAULT 0;
-- Refusals of ended windows not yet told by the cron (a window that
-- restarts carries its untold count here).
ALTER TABLE auth_failures ADD COLUMN carried INTEGER NOT NULL DEFAULT 0;
-- Admin-token attempts counted before their check and not checked yet.
ALTER TABLE auth_failures ADD COLUMN reserved INTEGER NOT NULL DEFAULT 0;

-- Dead letters: items a receiver refused on their own (while it took the
-- rest), kept per sink so the feed goes on and an admin can mend the
-- receiver and replay them. At most 1,000 a sink: the oldest beyond go, and
-- `dead_letters_dropped` counts them.
CREATE TABLE sink_dead_letters (
  id TEXT PRIMARY KEY,
  sink_id TEXT NOT NULL REFERENCES sinks(id) ON DELETE CASCADE,
  connection_id TEXT NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
  stream TEXT NOT NULL CHECK (stream IN ('events', 'alerts')),
  -- The event's or alert's id.
  item_id TEXT NOT NULL,
  -- Where an event lies in its connection's object: page id and line.
  page INTEGER NOT NULL,
  line INTEGER NOT NULL,
  status INTEGER NOT NULL,
  reason TEXT NOT NULL,
  at INTEGER NOT NULL
);
CREATE INDEX sink_dead_letters_by_sink ON sink_dead_letters (sink_id, connection_id, at);
ALTER TABLE sinks ADD COLUMN dead_letters_dropped INTEGER NOT NULL DEFAULT 0;
-- When an admin last asked for the dead letters to be sent again (ms).
ALTER TABLE sinks ADD COLUMN dead_letter_replay_at INTEGER;

-- Delete is durable: the connection's row goes at once (every route answers
-- 404), its tombstone stays while the object and the archive are purged (by
-- the object's alarm, and by the cron after any failure), and records when
-- nothing of it remained (`purged_at`: DELETE answers 204 from then on).
CREATE TABLE connection_tombstones (
  id TEXT PRIMARY KEY,
  deleted_at INTEGER NOT NULL,
  purged_at INTEGER
);

-- A ticket's connect attempts: a refused connect frees the ticket for the
-- admin to correct a field, and counts; after 5 the ticket is spent.
ALTER TABLE tickets ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;

-- A connection's own pull interval (30 to 3,600 s), set through PATCH;
-- NULL follows the deployment's PULL_INTERVAL_SECS.
ALTER TABLE connections ADD COLUMN pull_interval_secs INTEGER;

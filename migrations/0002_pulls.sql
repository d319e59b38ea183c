-- Pulls: a cursor per source table, the events (each source record once),
-- the outcome of every run, and a lease per connection against overlapping runs.
CREATE TABLE cursors (
  connection_id TEXT NOT NULL,
  source_table TEXT NOT NULL,
  -- Last record stored, in (sys_created_on, sys_id) order; raw UTC text.
  created_on TEXT,
  sys_id TEXT,
  -- X-Total-Count of the backfill's first page: the progress bar's total.
  backfill_total INTEGER NOT NULL DEFAULT 0,
  caught_up INTEGER NOT NULL DEFAULT 0,
  -- The page size this table's pages last succeeded with: once a 60 s
  -- cancellation taught us a smaller one, later runs start there.
  page_size INTEGER,
  PRIMARY KEY (connection_id, source_table)
);

CREATE TABLE events (
  connection_id TEXT NOT NULL,
  source_table TEXT NOT NULL,
  sys_id TEXT NOT NULL,
  occurred_at TEXT NOT NULL,
  kind TEXT NOT NULL,
  actor TEXT,
  source_ip TEXT,
  target_table TEXT,
  target_record TEXT,
  target_field TEXT,
  old_value TEXT,
  new_value TEXT,
  raw TEXT NOT NULL,
  -- A rowid table: rows carry the raw record (hundreds of bytes), which
  -- SQLite advises against in WITHOUT ROWID tables.
  UNIQUE (connection_id, source_table, sys_id)
);
CREATE INDEX events_by_time ON events (connection_id, occurred_at, source_table, sys_id);

CREATE TABLE pull_runs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  connection_id TEXT NOT NULL,
  started_at TEXT NOT NULL,
  finished_at TEXT NOT NULL,
  outcome TEXT NOT NULL,
  detail TEXT,
  events INTEGER NOT NULL DEFAULT 0,
  calls INTEGER NOT NULL DEFAULT 0,
  statements INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX pull_runs_by_connection ON pull_runs (connection_id, id);

CREATE TABLE leases (
  connection_id TEXT PRIMARY KEY,
  holder TEXT NOT NULL,
  expires_at INTEGER NOT NULL
);

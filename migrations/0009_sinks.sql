-- Forwarding: sinks (their credential sealed like instance secrets) and
-- each sink's progress per connection, as the connection's object reports
-- it. Delivery cursors live in the objects; this is the control plane's view.
CREATE TABLE sinks (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('webhook', 'splunk_hec', 'elastic', 'sentinel')),
  url TEXT NOT NULL,
  streams TEXT NOT NULL,
  -- JSON array of connection ids; NULL for every connection.
  connection_ids TEXT,
  format TEXT NOT NULL CHECK (format IN ('contract', 'ocsf', 'ecs')),
  -- What the kind needs beyond the URL that is not secret (JSON).
  params TEXT NOT NULL,
  -- AES-256-GCM, bound to 'sink:<id>'.
  secret TEXT NOT NULL,
  state TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'failing', 'disabled')),
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  last_success_at INTEGER,
  last_error_at INTEGER,
  last_error_status INTEGER,
  last_error_message TEXT,
  -- The latest replay asked for: [from, to) in Unix seconds, and when.
  replay_from INTEGER,
  replay_to INTEGER,
  replay_at INTEGER
);

CREATE TABLE sink_progress (
  sink_id TEXT NOT NULL REFERENCES sinks(id) ON DELETE CASCADE,
  connection_id TEXT NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
  delivered INTEGER NOT NULL DEFAULT 0,
  repeats INTEGER NOT NULL DEFAULT 0,
  pending INTEGER NOT NULL DEFAULT 0,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (sink_id, connection_id)
);

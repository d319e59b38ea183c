-- Alerts: few (one per rule, key and window, not per event), listed across
-- connections, so they live in the control plane. The connection's object
-- raises them; the admin acknowledges and closes them. They go with their
-- connection.
CREATE TABLE alerts (
  id TEXT PRIMARY KEY,
  connection_id TEXT NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
  rule TEXT NOT NULL,
  severity TEXT NOT NULL CHECK (severity IN ('critical', 'high', 'medium', 'low')),
  title TEXT NOT NULL,
  summary TEXT NOT NULL,
  actor TEXT,
  source_ip TEXT,
  first_seen TEXT NOT NULL,
  last_seen TEXT NOT NULL,
  count INTEGER NOT NULL,
  event_ids TEXT NOT NULL,
  attack TEXT NOT NULL,
  status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'acknowledged', 'closed')),
  status_changed_at TEXT,
  created_at TEXT NOT NULL
);
CREATE INDEX alerts_newest ON alerts (first_seen DESC, id DESC);
CREATE INDEX alerts_by_connection ON alerts (connection_id, status);

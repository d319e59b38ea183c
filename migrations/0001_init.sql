-- Connections and their sealed secrets. Later migrations add cursors and events.
CREATE TABLE connections (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL COLLATE NOCASE UNIQUE,
  instance_url TEXT NOT NULL,
  username TEXT NOT NULL,
  method TEXT NOT NULL CHECK (method IN ('oauth', 'basic')),
  client_id TEXT,
  enabled INTEGER NOT NULL DEFAULT 1,
  status TEXT NOT NULL CHECK (status IN ('connected', 'error', 'disabled')),
  -- Set while the connection is in error; kept through disable/enable.
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
  UNIQUE (instance_url, username)
);

-- AES-256-GCM sealed values (see snc_core::seal): refresh_token, access_token
-- and client_secret for OAuth; password for basic. Never plaintext.
CREATE TABLE connection_secrets (
  connection_id TEXT NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
  kind TEXT NOT NULL CHECK (kind IN ('refresh_token', 'access_token', 'client_secret', 'password')),
  key_id TEXT NOT NULL,
  sealed TEXT NOT NULL,
  expires_at TEXT,
  PRIMARY KEY (connection_id, kind)
);

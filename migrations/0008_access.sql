-- Access: API keys and connect tickets (kept only as the SHA-256 of the
-- credential), the audit log, and failed credentials per client address.
CREATE TABLE api_keys (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  scopes TEXT NOT NULL,
  hash TEXT NOT NULL UNIQUE,
  created_at TEXT NOT NULL,
  -- Unix seconds, so a comparison needs no parsing; NULL never expires.
  expires_at INTEGER,
  last_used_at INTEGER
);

CREATE TABLE tickets (
  id TEXT PRIMARY KEY,
  hash TEXT NOT NULL UNIQUE,
  origin TEXT,
  minted_by TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  -- Set while its one POST /connections runs and after it succeeded.
  claimed_at INTEGER,
  connection_id TEXT
);
CREATE INDEX tickets_expiry ON tickets (expires_at);

CREATE TABLE audit_log (
  id TEXT PRIMARY KEY,
  at INTEGER NOT NULL, -- Unix milliseconds
  actor_kind TEXT NOT NULL CHECK (actor_kind IN ('admin_token', 'key', 'ticket', 'access')),
  actor_id TEXT,
  actor_name TEXT,
  action TEXT NOT NULL,
  target TEXT,
  outcome TEXT NOT NULL,
  ip TEXT
);
CREATE INDEX audit_newest ON audit_log (at DESC, id DESC);

CREATE TABLE auth_failures (
  ip TEXT PRIMARY KEY,
  window_start INTEGER NOT NULL,
  failures INTEGER NOT NULL,
  -- Whether this window's first 429 is in the audit log (later ones are
  -- not written, so a flood of guesses cannot flood the log).
  refusal_audited INTEGER NOT NULL DEFAULT 0
);

-- Whose quota a connection counts against (`key:<id>`: the non-admin key
-- that made it, or that minted the ticket that did); NULL for an admin's.
ALTER TABLE connections ADD COLUMN owner TEXT;
CREATE INDEX connections_owner ON connections (owner) WHERE owner IS NOT NULL;

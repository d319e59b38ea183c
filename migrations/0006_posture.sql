-- The latest posture score of each connection, copied by its object after
-- each check so the connection list shows it; the checks and their history
-- live in the object.
ALTER TABLE connections ADD COLUMN posture_score INTEGER;

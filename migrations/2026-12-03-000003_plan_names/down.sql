ALTER TABLE plans DROP COLUMN descriptions, DROP COLUMN names;

-- What the admin API's user and subscription lists need (src/db/users.rs, src/db/subscriptions.rs).

-- The default list order, newest first with the id as tie-break; it also serves created_at ranges,
-- so the single-column index it replaces goes.
DROP INDEX users_created_at_idx;
CREATE INDEX users_created_at_id_idx ON users (created_at DESC, id DESC);

-- Username prefix search (`lower(username) LIKE 'abc%'`) in any collation, and email search
-- (`lower(email) = ...`). Not partial: ANALYZE keeps statistics of the expressions only for
-- indexes without a predicate, and without them the planner guesses 500 matches for an exact
-- email and scans the whole table for a page of one. The prefix index also answers equality, so
-- the default-opclass username index goes.
DROP INDEX users_username_idx;
CREATE INDEX users_username_prefix_idx ON users (lower(username) text_pattern_ops);
DROP INDEX users_email_idx;
CREATE INDEX users_email_lower_idx ON users (lower(email));

-- Expired subscriptions (any status) in order of their end; active ones use
-- subscriptions_cleanup_idx.
CREATE INDEX subscriptions_expires_idx ON subscriptions (expires_at);

-- Counting 100,000 rows takes milliseconds on every request: the number of users is kept here by
-- statement-level triggers instead (one update per statement, only when it changes the count).
CREATE TABLE row_counts (
    table_name  text    PRIMARY KEY,
    n           bigint  NOT NULL CHECK (n >= 0)
);

CREATE FUNCTION vpn_shop_count_rows() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    delta bigint;
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT count(*) INTO delta FROM new_rows;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT -count(*) INTO delta FROM old_rows;
    ELSE
        UPDATE row_counts SET n = 0 WHERE table_name = TG_TABLE_NAME;
        RETURN NULL;
    END IF;
    IF delta <> 0 THEN
        UPDATE row_counts SET n = n + delta WHERE table_name = TG_TABLE_NAME;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER users_count_insert AFTER INSERT ON users
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION vpn_shop_count_rows();
CREATE TRIGGER users_count_delete AFTER DELETE ON users
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION vpn_shop_count_rows();
CREATE TRIGGER users_count_truncate AFTER TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION vpn_shop_count_rows();

-- The triggers exist from here on, and the migration's lock keeps writers out until it commits.
INSERT INTO row_counts (table_name, n) SELECT 'users', count(*) FROM users;

-- Logical notifications that were asked for, by their dedup key (e.g. expiry:3d:<user>:<expires_at>,
-- traffic:80:<user>:<expires_at>): whoever enqueues a `notify` job inserts the key in the same
-- transaction, so one logical notification is enqueued once, however often a scan or sync runs.
-- Deliveries per channel are rows of `notifications`.
CREATE TABLE notification_keys (
    dedup_key   text        PRIMARY KEY,
    user_id     bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind        text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notification_keys_created_idx ON notification_keys (created_at);

-- Send budgets shared by all replicas (see src/db/rate.rs): the next free slot of each budget,
-- e.g. 'telegram' (TELEGRAM_MAX_RATE) and 'telegram:chat:<id>' (1 message per second per chat).
CREATE TABLE rate_slots (
    key         text        PRIMARY KEY,
    next_at     timestamptz NOT NULL
);

-- The syncs list long-expired subscriptions for the panel cleanup; the scan lists those about
-- to end.
CREATE INDEX subscriptions_cleanup_idx ON subscriptions (expires_at) WHERE status <> 'disabled';

-- A traffic plan's allowance is per paid period: each period bought with a plan that has a
-- traffic limit counts one up `traffic_period`; the provision job resets the panel's counter
-- (POST /api/user/{u}/reset) and then records the period in `traffic_reset_period`. The pair
-- is the durable marker "a reset is owed" (period > reset period): it survives a crash between
-- the payment and the panel write, and a retried job resets once.
ALTER TABLE subscriptions
    ADD COLUMN traffic_period       integer NOT NULL DEFAULT 0,
    ADD COLUMN traffic_reset_period integer NOT NULL DEFAULT 0;

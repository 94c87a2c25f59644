ALTER TABLE subscriptions
    DROP COLUMN traffic_reset_period,
    DROP COLUMN traffic_period;

-- Refunds, one row per refund at the provider (YooKassa refund id, WATA refund transaction id,
-- the Telegram charge id of a Stars payment). The unique key makes a refund count once however
-- it is learned of: the admin's request, the provider's webhook, or both.
CREATE TABLE payment_refunds (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    payment_id      bigint      NOT NULL REFERENCES payments (id) ON DELETE CASCADE,
    provider        text        NOT NULL CHECK (provider IN ('yookassa', 'wata', 'stars', 'free')),
    external_id     text        NOT NULL,
    amount_minor    bigint      NOT NULL CHECK (amount_minor > 0),
    days_taken_back integer     NOT NULL CHECK (days_taken_back >= 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT payment_refunds_external_key UNIQUE (provider, external_id)
);
CREATE INDEX payment_refunds_payment_idx ON payment_refunds (payment_id, created_at);

-- The saved payment method an automatic renewal charges: a charge whose answer was lost is asked
-- about again with the same request and Idempotence-Key (YooKassa answers with the same payment).
ALTER TABLE payments ADD COLUMN payment_method_id text;

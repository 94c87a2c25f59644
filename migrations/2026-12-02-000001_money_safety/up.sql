-- Money safety (see src/db/promo.rs, src/db/payments.rs, src/actors/payments/).

-- Promo reservations: a checkout with a limited code takes one of its uses under the code's row
-- lock; the use is the order's until the order is paid (then it is redeemed) or ends unpaid (then
-- it is given back). Pending reservations count toward max_uses, so a code with 100 uses is
-- never discounted on more than 100 orders, however many checkouts are opened at once.
ALTER TABLE promo_codes ADD COLUMN reserved_count integer NOT NULL DEFAULT 0
    CHECK (reserved_count >= 0);
ALTER TABLE promo_codes DROP CONSTRAINT promo_codes_uses_within_limit;
ALTER TABLE promo_codes ADD CONSTRAINT promo_codes_uses_within_limit
    CHECK (max_uses IS NULL OR uses_count + reserved_count <= max_uses);

CREATE TABLE promo_reservations (
    payment_id      bigint      PRIMARY KEY REFERENCES payments (id) ON DELETE CASCADE,
    promo_code_id   bigint      NOT NULL REFERENCES promo_codes (id) ON DELETE CASCADE,
    user_id         bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The code's rule when the use was taken: one use per user.
    once_per_user   boolean     NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX promo_reservations_code_idx ON promo_reservations (promo_code_id);
CREATE UNIQUE INDEX promo_reservations_once_per_user_key
    ON promo_reservations (promo_code_id, user_id) WHERE once_per_user;

-- Once per user, enforced: a redemption of a once-per-user code is unique per user. Redemptions
-- made before this rule keep their rows; only the first of a user's counts as the once.
ALTER TABLE promo_redemptions ADD COLUMN once_per_user boolean NOT NULL DEFAULT false;
UPDATE promo_redemptions r SET once_per_user = true
    FROM promo_codes c
    WHERE c.id = r.promo_code_id AND c.once_per_user
      AND r.id = (SELECT min(r2.id) FROM promo_redemptions r2
                  WHERE r2.promo_code_id = r.promo_code_id AND r2.user_id = r.user_id);
CREATE UNIQUE INDEX promo_redemptions_once_per_user_key
    ON promo_redemptions (promo_code_id, user_id) WHERE once_per_user;

-- Refunds the shop knows of before they count:
--   requested: the shop asked the provider and does not know the outcome yet (written before the
--              provider is called, under the order's lock: a second request sees it);
--   early:     the provider reported a refund of a payment the shop has not recorded as paid yet
--              (its notice came first); applied when the payment lands;
--   applied:   counted in payments.refunded_minor, days taken back;
--   failed:    the provider refused it.
ALTER TABLE payment_refunds ADD COLUMN state text NOT NULL DEFAULT 'applied'
    CHECK (state IN ('requested', 'early', 'applied', 'failed'));
ALTER TABLE payment_refunds ALTER COLUMN external_id DROP NOT NULL;
ALTER TABLE payment_refunds ADD CONSTRAINT payment_refunds_known_when_counted
    CHECK (external_id IS NOT NULL OR state IN ('requested', 'failed'));
CREATE INDEX payment_refunds_open_idx ON payment_refunds (payment_id)
    WHERE state IN ('requested', 'early');

-- A fully refunded first payment takes the inviter's bonus back, once.
ALTER TABLE referrals ADD COLUMN inviter_bonus_revoked_at timestamptz;

ALTER TABLE referrals DROP COLUMN inviter_bonus_revoked_at;
DROP INDEX payment_refunds_open_idx;
DELETE FROM payment_refunds WHERE state <> 'applied';
ALTER TABLE payment_refunds DROP CONSTRAINT payment_refunds_known_when_counted;
ALTER TABLE payment_refunds ALTER COLUMN external_id SET NOT NULL;
ALTER TABLE payment_refunds DROP COLUMN state;
DROP INDEX promo_redemptions_once_per_user_key;
ALTER TABLE promo_redemptions DROP COLUMN once_per_user;
DROP TABLE promo_reservations;
ALTER TABLE promo_codes DROP CONSTRAINT promo_codes_uses_within_limit;
ALTER TABLE promo_codes DROP COLUMN reserved_count;
ALTER TABLE promo_codes ADD CONSTRAINT promo_codes_uses_within_limit
    CHECK (max_uses IS NULL OR uses_count <= max_uses);

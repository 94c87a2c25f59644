ALTER TABLE payments DROP COLUMN payment_method_id;
DROP TABLE payment_refunds;

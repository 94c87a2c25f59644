-- A webhook refused at the edge (unsigned, forged, malformed: anyone can send one) keeps the size
-- and SHA-256 of its body, enough to recognise a repeated body, never the body: stored whole, a
-- flood of them filled the disk.
ALTER TABLE payment_events ADD COLUMN body_bytes integer CHECK (body_bytes >= 0);
ALTER TABLE payment_events ADD COLUMN body_sha256 text CHECK (body_sha256 ~ '^[0-9a-f]{64}$');

-- The bodies refused webhooks already left behind are a stranger's data of no use to the shop:
-- they go, their (stored JSON's) size stays. Refused at the edge = no order, key '-'.
UPDATE payment_events
SET body_bytes = octet_length(payload::text), payload = NULL
WHERE event_key = '-' AND payment_id IS NULL AND payload IS NOT NULL;

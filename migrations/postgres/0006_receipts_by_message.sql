-- A RECEIPT is keyed by the recipient that owes it and the message it is
-- for (`RECEIPT:<recipient>:<sender>:<message id>`), no longer by its
-- delivery's sequence number: a publisher then writes receipts with the
-- case's other obligations, before it waits for the feed's turn that
-- numbers deliveries (BENCHMARKS.md, sixth round). Acknowledging a delivery
-- finds its receipt by that key.
UPDATE obligations o
SET key = 'RECEIPT:' || d.recipient || ':' || m.sender || ':' || m.message_id
FROM deliveries d JOIN messages m ON m.id = d.message
WHERE o.delivery = d.seq;
DROP INDEX obligations_by_delivery;
ALTER TABLE obligations DROP COLUMN delivery;

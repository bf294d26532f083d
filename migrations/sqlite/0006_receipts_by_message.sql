-- A RECEIPT is keyed by the recipient that owes it and the message it is
-- for (`RECEIPT:<recipient>:<sender>:<message id>`), no longer by its
-- delivery's sequence number: a publisher then writes receipts with the
-- case's other obligations, before it waits for the feed's turn that
-- numbers deliveries (BENCHMARKS.md, sixth round). Acknowledging a delivery
-- finds its receipt by that key.
UPDATE obligations
SET key = 'RECEIPT:' || d.recipient || ':' || m.sender || ':' || m.message_id, delivery = NULL
FROM deliveries d JOIN messages m ON m.id = d.message
WHERE obligations.delivery = d.seq;
DROP INDEX obligations_by_delivery;
-- The column stays, always NULL: SQLite cannot drop a column that a
-- foreign key names.

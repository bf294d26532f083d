-- The references written while publishing are no longer checked row by
-- row. PostgreSQL checks a foreign key by running a query per inserted row
-- (an executor started and a parent row locked each time): during batched
-- ingest that was 27 % of the database's CPU time (BENCHMARKS.md, fourth
-- round). These rows are only ever written by the store, parents first,
-- in the transaction that takes their ids from RETURNING, and nothing is
-- ever deleted. The same statements run on SQLite, which keeps enforcing
-- these references (cheaply, in process) in every test, and every test
-- ends by looking for a dangling reference on both backends.
ALTER TABLE messages DROP CONSTRAINT messages_case_id_fkey;
ALTER TABLE deliveries DROP CONSTRAINT deliveries_message_fkey;
ALTER TABLE obligations DROP CONSTRAINT obligations_case_id_fkey;
ALTER TABLE obligations DROP CONSTRAINT obligations_delivery_fkey;

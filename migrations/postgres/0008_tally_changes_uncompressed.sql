-- A transaction's tally changes (a few kilobytes for a group of publishes)
-- stay in their row as written. Over 2 kB, PostgreSQL compressed each
-- (pglz): about 2.5 % of its CPU during ingest, for a row the folder
-- deletes within 100 ms. Now a row moves out of line only past 8 kB, and
-- is never compressed.
ALTER TABLE tally_changes SET (toast_tuple_target = 8160);
ALTER TABLE tally_changes ALTER COLUMN changes SET STORAGE EXTERNAL;

-- How much of an archive its download links have delivered so far, as the backup host counts it
-- (each byte once, over every resumed range), and in how many responses.
-- Forward-only and frozen: later changes go into new numbered files.
alter table archive_requests add column delivered_bytes bigint;
alter table archive_requests add column delivered_parts integer;

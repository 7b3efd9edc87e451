-- The event sync leases its host's progress row instead of holding its lock across the backup host's answers.
-- Forward-only and frozen: later changes go into new numbered files.
alter table backup_host_sync add column leased_until timestamptz;

-- Each archive request remembers the backup host its archive was built on: every later action (status,
-- arming, links, events) goes to that host, even after the customer is moved to another one.
-- Forward-only and frozen: later changes go into new numbered files.
-- Existing rows were all made on the single host, which the single-host settings name "default";
-- the portal names the host on every insert.
alter table archive_requests add column backup_host text not null default 'default';
alter table archive_requests add constraint archive_requests_backup_host_name
  check (backup_host ~ '^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$');

-- The poller claims due builds one host at a time.
create index archive_requests_host_poll on archive_requests (backup_host, next_poll_at)
  where state in ('requested', 'building');

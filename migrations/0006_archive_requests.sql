-- Archives: what customers asked the backup host for, as the portal tracks it, and the backup
-- host's own event log pulled into the portal for the operator.
-- The download token is never stored here (docs/SECURITY.md, "Downloads"): the backup host keeps
-- only its hash, and the portal holds it only in memory while it sends the email.
-- Forward-only and frozen: later changes go into new numbered files.
create table archive_requests (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references users (id) on delete cascade,
  -- The customer name and snapshot as the dispatcher knows them (the user's domain at request time).
  customer text not null,
  snapshot text not null,
  -- The dispatcher's archive id, once archive.create has answered.
  archive_id text unique,
  state text not null default 'requested'
    check (state in ('requested', 'building', 'ready', 'failed', 'cancelled', 'downloaded', 'expired')),
  bytes_written bigint not null default 0,
  files_written bigint not null default 0,
  percent integer,
  size_bytes bigint,
  sha256 text,
  failure_reason text,            -- the dispatcher's user-facing reason; never a path or a secret
  download_file_name text,
  requested_at timestamptz not null default now(),
  requested_ip inet,              -- kept only for the IP retention period
  ready_at timestamptz,
  expires_at timestamptz,
  finished_at timestamptz,        -- when it reached failed, cancelled, downloaded or expired
  -- The status poller: when this request's state should next be asked of the backup host.
  next_poll_at timestamptz not null default now(),
  -- Failed status calls in a row; each pushes next_poll_at further out, and a good answer resets it.
  poll_failures integer not null default 0,
  -- The link email: due when set; a retry or a "send the link again" mints a new token.
  notify_due_at timestamptz,
  notify_attempts integer not null default 0,
  notified_at timestamptz,
  last_notify_error text
);

create index archive_requests_user on archive_requests (user_id, requested_at desc);
create index archive_requests_poll on archive_requests (next_poll_at) where state in ('requested', 'building');
create index archive_requests_notify on archive_requests (notify_due_at) where notify_due_at is not null;
-- One build at a time per customer, as the dispatcher's own lock also enforces.
create unique index archive_requests_one_building on archive_requests (user_id) where state in ('requested', 'building');

-- The dispatcher's events (events.since), copied in order without gaps or duplicates.
create table backup_host_events (
  host text not null,             -- which backup host ('default' while the portal has one)
  seq bigint not null,
  at timestamptz not null,
  type text not null,
  customer text not null,
  archive_id text not null,
  ip inet,                        -- kept only for the IP retention period
  bytes bigint,
  detail text,
  received_at timestamptz not null default now(),
  primary key (host, seq)
);

create index backup_host_events_archive on backup_host_events (archive_id, seq);
create index backup_host_events_at on backup_host_events (at);

-- How far each backup host's events have been copied; the row is locked while one instance syncs.
create table backup_host_sync (
  host text primary key,
  last_seq bigint not null default 0,
  synced_at timestamptz,
  last_error text
);

-- What the portal keeps about a completed download (shown on the archive's page, used for the
-- request cooldown) and whether its receipt email was queued.
-- Forward-only and frozen: later changes go into new numbered files.
alter table archive_requests
  add column downloaded_ip inet,          -- from the backup host's download.completed event; kept only for the IP retention period
  add column downloaded_bytes bigint,
  -- Set in the same transaction that queues the receipt email, so it goes out once per archive.
  add column receipt_queued_at timestamptz;

-- The cooldown looks up a customer's newest completed download.
create index archive_requests_downloaded on archive_requests (user_id, finished_at desc) where state = 'downloaded';

-- Portal hardening: one account per domain, and the per-address record of "forgot password" requests.
-- Forward-only and frozen: later changes go into new numbered files.

-- Backups are chosen by the customer's domain alone, so two accounts must never share one. The app
-- already stores domains normalised (trimmed, lowercase, no trailing dot); older rows are brought to
-- that form first, and the index compares the normalised form whatever a later writer stores. If two
-- accounts already share a domain, creating the index fails and names it: the operator must change
-- one of them (archway users) before migrating.
update users set domain = rtrim(lower(btrim(domain)), '.') where domain is not null and domain <> rtrim(lower(btrim(domain)), '.');
create unique index users_domain_normalised on users (rtrim(lower(btrim(domain)), '.')) where domain is not null;

-- One row per "forgot password" request, whatever the address asked for, to limit requests per client
-- address (IPv6 per /64). Rows older than a day are deleted by the next request.
create table password_reset_requests (
  id bigint generated always as identity primary key,
  at timestamptz not null,
  ip inet not null
);

create index password_reset_requests_ip_at on password_reset_requests (ip, at);
create index password_reset_requests_at on password_reset_requests (at);

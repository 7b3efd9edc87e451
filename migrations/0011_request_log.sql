-- The request log: one time-ordered record of every security and archive event, written by each
-- producer in the transaction of the change it records, read by the operator's request log.
-- Forward-only and frozen: later changes go into new numbered files.
create table request_log (
  id bigint generated always as identity primary key,
  at timestamptz not null,
  user_id uuid references users (id) on delete set null,  -- the customer (or operator) concerned
  ip inet,                                                -- kept only for the IP retention period
  kind text not null check (kind in ('sign-in', 'two-factor', 'block', 'archive', 'link', 'download', 'account')),
  event text not null,                                    -- e.g. 'password', 'second-step', 'requested', 'completed'
  outcome text not null check (outcome in ('success', 'failure', 'blocked', 'refused', 'info')),
  detail jsonb not null default '{}'::jsonb
);

-- Newest first, with the id breaking ties: each filter has an index in the same order, so a page
-- (first or deep, by keyset) reads only its own rows.
create index request_log_at on request_log (at desc, id desc);
create index request_log_user_at on request_log (user_id, at desc, id desc);
create index request_log_ip_at on request_log (ip, at desc, id desc);
create index request_log_kind_at on request_log (kind, at desc, id desc);
create index request_log_outcome_at on request_log (outcome, at desc, id desc);

-- Counts per UTC hour, kept by the trigger below, so the charts read a few thousand rows however
-- long the log is.
create table request_log_hourly (
  hour timestamptz not null,
  kind text not null,
  event text not null,
  outcome text not null,
  n bigint not null,
  primary key (hour, kind, event, outcome)
);

create function request_log_count() returns trigger language plpgsql as $$
begin
  insert into request_log_hourly (hour, kind, event, outcome, n)
  values (date_trunc('hour', new.at, 'UTC'), new.kind, new.event, new.outcome, 1)
  on conflict (hour, kind, event, outcome) do update set n = request_log_hourly.n + 1;
  return null;
end
$$;

create trigger request_log_count after insert on request_log
  for each row execute function request_log_count();

-- What happened before this table existed, from the tables that recorded it.
insert into request_log (at, user_id, ip, kind, event, outcome, detail)
select at, user_id, ip, 'sign-in', 'password', outcome, jsonb_build_object('reason', reason)
from sign_in_attempts;

-- The same placement as the code's (src/archives/event-sync.ts, src/users/audit.ts).
insert into request_log (at, user_id, ip, kind, event, outcome, detail)
select e.at, r.user_id, e.ip, coalesce(m.kind, 'archive'), coalesce(m.event, e.type), coalesce(m.outcome, 'info'),
       jsonb_strip_nulls(jsonb_build_object('archive', e.archive_id, 'bytes', e.bytes, 'host', e.host, 'seq', e.seq))
from backup_host_events e
left join archive_requests r on r.archive_id = e.archive_id and r.customer = e.customer
left join (values
  ('archive.requested', 'archive', 'build-started', 'info'),
  ('archive.ready', 'archive', 'ready', 'success'),
  ('archive.failed', 'archive', 'failed', 'failure'),
  ('archive.cancelled', 'archive', 'build-stopped', 'info'),
  ('archive.expired', 'archive', 'expired', 'info'),
  ('archive.armed', 'link', 'armed', 'info'),
  ('link.issued', 'link', 'issued', 'success'),
  ('link.expired', 'link', 'expired', 'info'),
  ('download.completed', 'download', 'completed', 'success'),
  ('download.interrupted', 'download', 'interrupted', 'failure')
) as m (type, kind, event, outcome) on m.type = e.type;

insert into request_log (at, user_id, ip, kind, event, outcome, detail)
select a.at, u.id, a.ip, coalesce(m.kind, 'account'), coalesce(m.event, a.action), coalesce(m.outcome, 'info'),
       a.detail || jsonb_build_object('actor', a.actor)
from audit_log a
left join users u on u.id::text = a.subject
left join (values
  ('archive.requested', 'archive', 'requested', 'success'),
  ('archive.cancelled', 'archive', 'cancelled', 'info'),
  ('archive.link_sent', 'link', 'emailed', 'success'),
  ('sign-in.unblocked', 'block', 'lifted', 'info')
) as m (action, kind, event, outcome) on m.action = a.action;

-- Foundation: the audit log every capability writes to and the operator reads.
-- Forward-only and frozen: later changes go into new numbered files.
create table audit_log (
  id bigint generated always as identity primary key,
  at timestamptz not null default now(),
  actor text,                 -- who acted: a user id, 'system', or null when unknown
  action text not null,       -- e.g. 'user.created', 'archive.requested'
  subject text,               -- what it acted on, e.g. a user id or archive id
  ip inet,                    -- kept only for the IP retention period (see docs/SECURITY.md)
  detail jsonb not null default '{}'::jsonb
);

create index audit_log_at on audit_log (at);
create index audit_log_action_at on audit_log (action, at);

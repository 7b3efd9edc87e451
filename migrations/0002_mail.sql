-- Mail: the outgoing queue. A row waits until a worker sends it or gives up; the body is sealed
-- (AES-256-GCM, see src/mail/mail-seal.ts) while it waits and removed once the row is finished,
-- so a reset link never stays readable in the table (docs/SECURITY.md, "Mail").
create table mail_queue (
  id uuid primary key,
  recipient text not null,
  template text not null,       -- e.g. 'password-reset'; for diagnostics, never the content
  body bytea,                   -- sealed subject, text and HTML; null once sent or given up
  status text not null default 'pending' check (status in ('pending', 'sent', 'failed')),
  attempts integer not null default 0,
  next_attempt_at timestamptz not null default now(),
  last_error text,              -- why the last attempt failed (never a password)
  created_at timestamptz not null default now(),
  finished_at timestamptz,      -- when it was sent or given up
  -- Only a waiting message may hold a body; a finished one never does.
  constraint mail_queue_body_only_while_pending check ((status = 'pending') = (body is not null))
);

create index mail_queue_due on mail_queue (next_attempt_at) where status = 'pending';
create index mail_queue_finished_at on mail_queue (finished_at) where status <> 'pending';

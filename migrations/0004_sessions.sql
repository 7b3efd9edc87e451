-- Sessions, sign-in attempts and brute-force blocks.
-- Forward-only and frozen: later changes go into new numbered files.

-- One row per signed-in browser. The cookie carries a random 256-bit id; only its SHA-256 is the
-- key here, so a copy of this table cannot be replayed as cookies.
create table sessions (
  id text primary key,                      -- hex SHA-256 of the session id in the cookie
  user_id uuid references users (id) on delete cascade,
  data jsonb not null default '{}'::jsonb,  -- other session values (CSRF-free: the CSRF secret is a cookie)
  created_at timestamptz not null,
  last_seen_at timestamptz not null,        -- idle expiry: last_seen_at + ARCHWAY_SESSION_IDLE_MINUTES
  expires_at timestamptz not null,          -- absolute expiry: created_at + ARCHWAY_SESSION_ABSOLUTE_HOURS
  ip inet,                                  -- kept only for the IP retention period
  user_agent text
);

create index sessions_user on sessions (user_id);
create index sessions_expires_at on sessions (expires_at);

-- Every sign-in attempt, whatever its outcome; regulation counts these rows.
create table sign_in_attempts (
  id bigint generated always as identity primary key,
  at timestamptz not null,
  email_tried text,                         -- as typed; nulled with the IP after the retention period if it matched no user
  user_id uuid references users (id) on delete set null,
  ip inet,                                  -- kept only for the IP retention period
  outcome text not null check (outcome in ('success', 'failure', 'blocked', 'refused')),
  reason text not null
);

create index sign_in_attempts_at on sign_in_attempts (at);
create index sign_in_attempts_ip_at on sign_in_attempts (ip, at);
create index sign_in_attempts_user_at on sign_in_attempts (user_id, at);

-- A block derived from the attempts: by IP (key = the address) or by user (key = the user id).
create table blocks (
  id bigint generated always as identity primary key,
  scope text not null check (scope in ('ip', 'user')),
  key text not null,
  until timestamptz not null,
  level integer not null check (level >= 1),  -- 1 for the first block in the escalation memory, 2 for the next...
  created_at timestamptz not null,
  lifted_at timestamptz,
  lifted_by uuid references users (id) on delete set null
);

create index blocks_scope_key on blocks (scope, key, until);

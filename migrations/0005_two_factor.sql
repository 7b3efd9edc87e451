-- Two-factor sign-in (TOTP and recovery codes), its own brute-force regulation, and remember-me logins.
-- Forward-only and frozen: later changes go into new numbered files.

-- One row per user who has started or finished enrolment. The TOTP secret is stored only
-- encrypted (AES-256-GCM, "v1:<key id>:<iv>:<ciphertext+tag>", bound to the user id), so a copy of
-- this table gives no codes; the key id lets `archway keys rotate` re-encrypt under a new key.
create table two_factor (
  user_id uuid primary key references users (id) on delete cascade,
  secret_encrypted text not null,
  created_at timestamptz not null,
  -- Null while enrolment waits for the first correct code; set when two-factor is on.
  enabled_at timestamptz,
  -- The last accepted TOTP time step (unix time / 30): the same or an older step is refused, so a
  -- code works once (ASVS 2.8.4).
  last_used_step bigint
);

-- Ten single-use recovery codes per user; only HMAC-SHA-256 (keyed with a key derived from the
-- password pepper) of each is stored. A new set replaces the old one.
create table two_factor_recovery_codes (
  id bigint generated always as identity primary key,
  user_id uuid not null references users (id) on delete cascade,
  code_hash bytea not null unique,
  created_at timestamptz not null,
  used_at timestamptz
);

create index two_factor_recovery_codes_user on two_factor_recovery_codes (user_id);

-- Wrong codes at the second sign-in step, counted apart from wrong passwords.
create table two_factor_failures (
  id bigint generated always as identity primary key,
  at timestamptz not null,
  user_id uuid not null references users (id) on delete cascade,
  ip inet                                   -- deleted with the row after the escalation window
);

create index two_factor_failures_user_at on two_factor_failures (user_id, at);
create index two_factor_failures_ip_at on two_factor_failures (ip, at);

-- Blocks of the second step, by user (key = user id) or by IP (key = the address).
create table two_factor_blocks (
  id bigint generated always as identity primary key,
  scope text not null check (scope in ('ip', 'user')),
  key text not null,
  until timestamptz not null,
  created_at timestamptz not null,
  lifted_at timestamptz,
  lifted_by uuid references users (id) on delete set null
);

create index two_factor_blocks_scope_key on two_factor_blocks (scope, key, until);

-- Remember-me logins: the cookie holds a random series and a random token. The series is stored
-- as is (it is only a lookup key); the token only as SHA-256, so a copy of this table cannot be
-- turned into cookies. A used row is not deleted but marked replaced: within a few seconds the same
-- cookie still yields the login that replaced it (two tabs), after that it is a sign of theft.
create table remember_logins (
  id bigint generated always as identity primary key,
  user_id uuid not null references users (id) on delete cascade,
  series text not null unique,
  token_hash bytea not null,
  created_at timestamptz not null,
  last_used_at timestamptz not null,
  -- Absolute: 5 days after the sign-in that ticked "remember me"; rotation does not extend it.
  expires_at timestamptz not null,
  replaced_at timestamptz,
  replaced_by text,                         -- the series that replaced this one
  -- SHA-256 key of the session this login last started (sessions.id), to end both together.
  session_id text,
  ip inet,
  user_agent text
);

create index remember_logins_user on remember_logins (user_id);
create index remember_logins_expires_at on remember_logins (expires_at);

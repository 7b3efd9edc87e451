-- Accounts: the little the portal stores about each customer and operator, their payments, and
-- the one-time tokens of invitations and password resets.
-- Forward-only and frozen: later changes go into new numbered files.
create table users (
  id uuid primary key default gen_random_uuid(),
  email text not null,
  role text not null check (role in ('customer', 'operator')),
  -- The installation's domain and plan; an operator account has neither.
  domain text,
  plan text,
  paypal_subscription_id text,
  status text not null default 'invited' check (status in ('invited', 'active', 'suspended')),
  -- The backup host this customer's backups live on (a name from the portal's host settings).
  backup_host text,
  -- argon2id of HMAC-SHA-256(pepper, NFKC(password)); null until the invitation is used.
  password_hash text,
  created_at timestamptz not null default now(),
  constraint users_customer_has_domain_and_plan check (role <> 'customer' or (domain is not null and plan is not null))
);

-- Email addresses are unique whatever their case: Alice@Example.net is alice@example.net.
create unique index users_email_lower on users (lower(email));

create table payments (
  id bigint generated always as identity primary key,
  user_id uuid not null references users (id) on delete cascade,
  paid_at timestamptz not null,
  amount numeric(12, 2) not null,
  currency char(3) not null check (currency ~ '^[A-Z]{3}$'),
  -- The payment processor's reference (e.g. a PayPal transaction id).
  reference text not null,
  unique (user_id, reference)
);

create index payments_user_paid_at on payments (user_id, paid_at);

-- Split tokens (selector + verifier): the selector finds the row, only SHA-256 of the verifier is
-- stored, so a copy of this table cannot be turned into working links.
create table account_tokens (
  id bigint generated always as identity primary key,
  user_id uuid not null references users (id) on delete cascade,
  purpose text not null check (purpose in ('invitation', 'password_reset')),
  selector text not null unique,
  verifier_hash bytea not null,
  created_at timestamptz not null default now(),
  expires_at timestamptz not null,
  used_at timestamptz
);

create index account_tokens_user on account_tokens (user_id, purpose);

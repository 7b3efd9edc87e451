-- The per-user page limits, counted in the database so that every portal instance counts together.
-- Forward-only and frozen: later changes go into new numbered files.
create table rate_limit_hits (
  key text primary key,                     -- '<method> <route>|user:<id>' (or '|ip:<address>' before sign-in)
  window_started_at timestamptz not null,
  hits integer not null
);

-- The retention purge removes windows long over (a key may hold an IP address).
create index rate_limit_hits_window on rate_limit_hits (window_started_at);

-- The audit trail becomes tamper-evident and append-only for the portal.
-- Forward-only and frozen: later changes go into new numbered files.
--
-- Each row carries the SHA-256 of the previous row's hash and its own canonical text, in the order
-- the rows joined the chain (chain_seq). A trigger owned by the table's owner links every insert,
-- so no writer can leave it out; the portal's role may only read and add rows.

alter table audit_log
  add column chain_seq bigint,
  add column prev_hash bytea,
  add column hash bytea;

-- Where the chain stands: its newest row, and the anchor it starts from (the genesis hash, or the
-- hash of the last row a retention purge removed), so a purged chain still verifies.
create table audit_chain (
  singleton boolean primary key default true check (singleton),
  head_seq bigint not null,
  head_hash bytea not null,
  anchor_seq bigint not null,
  anchor_hash bytea not null
);

insert into audit_chain (head_seq, head_hash, anchor_seq, anchor_hash)
values (0, sha256(convert_to('archway audit trail', 'UTF8')), 0, sha256(convert_to('archway audit trail', 'UTF8')));

-- The text a row's hash covers: every column that says what happened, as one JSON array, so no
-- value can borrow characters from its neighbour. `archway audit verify` hashes the same text.
create function audit_row_text(a audit_log) returns text language sql stable as $$
  select jsonb_build_array(
    a.chain_seq, a.id, to_char(a.at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    a.actor, a.action, a.subject, host(a.ip), a.detail
  )::text
$$;

create function audit_chain_link() returns trigger language plpgsql security definer
set search_path = public, pg_temp as $$
declare
  chain audit_chain;
begin
  -- The row lock orders concurrent inserts: each links to the one committed before it.
  select * into chain from audit_chain for update;
  new.chain_seq := chain.head_seq + 1;
  new.prev_hash := chain.head_hash;
  new.hash := sha256(chain.head_hash || convert_to(audit_row_text(new), 'UTF8'));
  update audit_chain set head_seq = new.chain_seq, head_hash = new.hash;
  return new;
end
$$;

-- The rows written before this migration join the chain in id order.
do $$
declare
  r audit_log;
  chain audit_chain;
begin
  for r in select * from audit_log order by id loop
    select * into chain from audit_chain;
    r.chain_seq := chain.head_seq + 1;
    r.prev_hash := chain.head_hash;
    r.hash := sha256(chain.head_hash || convert_to(audit_row_text(r), 'UTF8'));
    update audit_log set chain_seq = r.chain_seq, prev_hash = r.prev_hash, hash = r.hash where id = r.id;
    update audit_chain set head_seq = r.chain_seq, head_hash = r.hash;
  end loop;
end
$$;

alter table audit_log
  alter column chain_seq set not null,
  alter column prev_hash set not null,
  alter column hash set not null,
  add constraint audit_log_chain_seq unique (chain_seq);

create trigger audit_chain_link before insert on audit_log
  for each row execute function audit_chain_link();

-- The retention purge: removes whole rows older than the cutoff from the start of the chain only
-- (never one in the middle), and moves the anchor to the last row removed, so verify still passes.
-- Returns how many rows went, or -1 (nothing removed) when rows are missing from that part.
create function audit_purge(cutoff timestamptz) returns bigint language plpgsql security definer
set search_path = public, pg_temp as $$
declare
  chain audit_chain;
  last_seq bigint;
  last_hash bytea;
  removed bigint;
begin
  select * into chain from audit_chain for update;
  -- The oldest row that is not old enough ends the purge, even if later rows are older.
  select coalesce((select min(chain_seq) - 1 from audit_log where at >= cutoff), chain.head_seq) into last_seq;
  if last_seq <= chain.anchor_seq then
    return 0;
  end if;
  select hash into last_hash from audit_log where chain_seq = last_seq;
  -- Rows missing from the part to purge are evidence of tampering: keep everything, say so (-1).
  if last_hash is null or (select count(*) from audit_log where chain_seq > chain.anchor_seq and chain_seq <= last_seq)
                          <> last_seq - chain.anchor_seq then
    return -1;
  end if;
  delete from audit_log where chain_seq <= last_seq;
  get diagnostics removed = row_count;
  update audit_chain set anchor_seq = last_seq, anchor_hash = last_hash;
  return removed;
end
$$;

-- The portal's role. The operator grants it to the login role the portal uses (docs/OPERATIONS.md);
-- migrations run as the owner of the tables.
do $$
begin
  if not exists (select 1 from pg_roles where rolname = 'archway_portal') then
    create role archway_portal nologin;
  end if;
end
$$;

grant usage on schema public to archway_portal;
grant select, insert, update, delete on all tables in schema public to archway_portal;
grant usage, select on all sequences in schema public to archway_portal;
alter default privileges in schema public grant select, insert, update, delete on tables to archway_portal;
alter default privileges in schema public grant usage, select on sequences to archway_portal;
-- Append-only for the portal: it reads and adds audit rows, and may purge only through audit_purge.
revoke update, delete, truncate on audit_log from archway_portal;
revoke insert, update, delete, truncate on audit_chain from archway_portal;
revoke all on function audit_purge(timestamptz) from public;
grant execute on function audit_purge(timestamptz) to archway_portal;

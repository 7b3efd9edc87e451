// Brute-force regulation of sign-in: every attempt is a row, blocks are derived from the rows in a window.
import { isIP } from 'node:net';
import { sql, type Kysely, type Transaction } from 'kysely';
import type { Clock } from '../clock.js';
import type { RegulationConfig } from '../config.js';
import type { Database } from '../db/database.js';
import type { BlockScope, SignInOutcome } from './auth.tables.js';

type Db = Kysely<Database> | Transaction<Database>;

export interface Regulator {
  db: Kysely<Database>;
  clock: Clock;
  settings: RegulationConfig;
}

export interface Attempt {
  emailTried: string;
  userId: string | null;
  ip: string;
  outcome: SignInOutcome;
  /** For the log and the operator page only: 'wrong_password', 'unknown_email', 'ip_blocked', ... */
  reason: string;
}

export interface Block {
  id: string;
  scope: BlockScope;
  key: string;
  until: Date;
  level: number;
  createdAt: Date;
}

/** An IPv4 address written as IPv6 (`::ffff:192.0.2.1`, from a dual-stack socket) is the IPv4 address. */
export function normalizeIp(ip: string): string {
  const tail = ip.toLowerCase().startsWith('::ffff:') ? ip.slice(7) : null;
  return tail !== null && isIP(tail) === 4 ? tail : ip;
}

/**
 * What an address block covers: one IPv4 address, or a whole IPv6 /64, since one customer line (or
 * one attacker's server) usually gets a /64 and could otherwise use a fresh address for every guess.
 */
export function addressBlockKey(ip: string): string {
  const address = normalizeIp(ip);
  if (isIP(address) === 4) return `${address}/32`;
  if (isIP(address) !== 6) return address;
  const [head = '', tail] = address.split('::');
  const groupsOf = (part: string) => (part === '' ? [] : part.split(':').flatMap((g) => (g.includes('.') ? ['0', '0'] : [g])));
  const front = groupsOf(head);
  const back = tail === undefined ? [] : groupsOf(tail);
  const groups = [...front, ...Array<string>(Math.max(0, 8 - front.length - back.length)).fill('0'), ...back];
  return `${groups.slice(0, 4).map((g) => parseInt(g, 16).toString(16)).join(':')}::/64`;
}

/**
 * The block that stops this attempt, if any: the IP's first (it covers every account tried from
 * there), then the account's.
 */
export async function findActiveBlock(regulator: Regulator, ip: string, userId: string | null): Promise<Block | null> {
  const now = regulator.clock.now();
  let query = regulator.db
    .selectFrom('blocks')
    .selectAll()
    .where('lifted_at', 'is', null)
    .where('until', '>', now)
    .where((eb) => {
      const ipBlock = eb.and([eb('scope', '=', 'ip'), eb('key', '=', addressBlockKey(ip))]);
      return userId === null ? ipBlock : eb.or([ipBlock, eb.and([eb('scope', '=', 'user'), eb('key', '=', userId)])]);
    });
  query = query.orderBy(sql`scope = 'ip'`, 'desc').orderBy('until', 'desc');
  const row = await query.executeTakeFirst();
  return row === undefined ? null : toBlock(row);
}

/**
 * Writes the attempt; after a failure, blocks the IP and the account when their failures in the
 * window reach the threshold. Returns the blocks this attempt created.
 */
export async function recordAttempt(regulator: Regulator, attempt: Attempt): Promise<Block[]> {
  return regulator.db.transaction().execute(async (trx) => {
    const now = regulator.clock.now();
    await trx
      .insertInto('sign_in_attempts')
      .values({
        at: now,
        email_tried: attempt.emailTried.slice(0, 320),
        user_id: attempt.userId,
        ip: normalizeIp(attempt.ip),
        outcome: attempt.outcome,
        reason: attempt.reason,
      })
      .execute();
    if (attempt.outcome !== 'failure') return [];
    const created: Block[] = [];
    const ipBlock = await blockIfDue(trx, regulator, 'ip', addressBlockKey(attempt.ip), now);
    if (ipBlock !== null) created.push(ipBlock);
    if (attempt.userId !== null) {
      const userBlock = await blockIfDue(trx, regulator, 'user', attempt.userId, now);
      if (userBlock !== null) created.push(userBlock);
    }
    return created;
  });
}

async function blockIfDue(trx: Transaction<Database>, regulator: Regulator, scope: BlockScope, key: string, now: Date): Promise<Block | null> {
  const s = regulator.settings;
  const state = await blockState(trx, regulator, scope, key, now);
  const threshold = scope === 'ip' ? s.ipMaxFailures : s.userMaxFailures;
  if (state.active || state.failures < threshold) return null;

  // Concurrent failures for the same key (200 clients at once) wait here, and the first one's block
  // is visible to the others once they hold the lock (each statement sees the latest commits), so
  // one block is made, not 200. Attempts below the threshold, the common case, never take the lock.
  await sql`select pg_advisory_xact_lock(hashtext(${`archway-block:${scope}:${key}`}))`.execute(trx);
  const locked = await blockState(trx, regulator, scope, key, now);
  if (locked.active) return null;

  const level = locked.earlier + 1;
  const until = new Date(now.getTime() + blockDurationMs(s, scope, level));
  const row = await trx
    .insertInto('blocks')
    .values({ scope, key, until, level, created_at: now })
    .returningAll()
    .executeTakeFirstOrThrow();
  return toBlock(row);
}

/**
 * In one query: whether a block of this key is active; its failures counted from the latest of the
 * window start, an operator's unblock (a fresh start) and, for an account, its last successful
 * sign-in (the owner got in; older failures say nothing now); and its earlier blocks within the
 * escalation memory that no operator lifted (each doubles the next).
 */
async function blockState(
  trx: Transaction<Database>,
  regulator: Regulator,
  scope: BlockScope,
  key: string,
  now: Date,
): Promise<{ active: boolean; failures: number; earlier: number }> {
  const s = regulator.settings;
  const windowStart = new Date(now.getTime() - (scope === 'ip' ? s.ipWindowMinutes : s.userWindowMinutes) * 60_000);
  const escalationStart = new Date(now.getTime() - s.escalationHours * 3_600_000);
  // An address key is a range (IPv4 /32, IPv6 /64): every attempt from inside it counts.
  const matches = scope === 'ip' ? sql`a.ip <<= ${key}::inet` : sql`a.user_id = ${key}::uuid`;
  const lastSuccess =
    scope === 'user'
      ? sql`(select max(s.at) from sign_in_attempts s where s.user_id = ${key}::uuid and s.outcome = 'success')`
      : sql`null::timestamptz`;
  const result = await sql<{ active: boolean; failures: string; earlier: string }>`
    select
      exists (select 1 from blocks b where b.scope = ${scope} and b.key = ${key} and b.lifted_at is null and b.until > ${now}) as active,
      (select count(*) from sign_in_attempts a
        where ${matches} and a.outcome = 'failure'
          and a.at > greatest(
            ${windowStart}::timestamptz,
            (select max(b.lifted_at) from blocks b where b.scope = ${scope} and b.key = ${key}),
            ${lastSuccess})) as failures,
      (select count(*) from blocks b
        where b.scope = ${scope} and b.key = ${key} and b.lifted_at is null and b.created_at > ${escalationStart}) as earlier
  `.execute(trx);
  const row = result.rows[0]!;
  return { active: row.active, failures: Number(row.failures), earlier: Number(row.earlier) };
}

/** Length of the level-th block: the first length doubled per level, never above the maximum. */
export function blockDurationMs(s: RegulationConfig, scope: BlockScope, level: number): number {
  const first = scope === 'ip' ? s.ipBlockMinutes * 60_000 : s.userBlockSeconds * 1_000;
  const max = scope === 'ip' ? s.ipBlockMaxMinutes * 60_000 : s.userBlockMaxMinutes * 60_000;
  return Math.min(first * 2 ** Math.min(level - 1, 30), max);
}

/** The operator's unblock: the row stays (who lifted it, when), and counting starts afresh for that key. */
export async function liftBlock(regulator: Regulator, blockId: string, operatorId: string): Promise<Block | null> {
  if (!/^\d{1,18}$/.test(blockId)) return null;
  const row = await regulator.db
    .updateTable('blocks')
    .set({ lifted_at: regulator.clock.now(), lifted_by: operatorId })
    .where('id', '=', blockId)
    .where('lifted_at', 'is', null)
    .returningAll()
    .executeTakeFirst();
  return row === undefined ? null : toBlock(row);
}

export interface ActiveBlockView extends Block {
  /** The account's email for a user block; null for an IP block. */
  email: string | null;
}

export async function listActiveBlocks(regulator: Regulator): Promise<ActiveBlockView[]> {
  const rows = await regulator.db
    .selectFrom('blocks')
    .leftJoin('users', (join) => join.on(sql<boolean>`blocks.scope = 'user' and blocks.key = users.id::text`))
    .selectAll('blocks')
    .select('users.email')
    .where('blocks.lifted_at', 'is', null)
    .where('blocks.until', '>', regulator.clock.now())
    .orderBy('blocks.created_at', 'desc')
    .execute();
  return rows.map((row) => ({ ...toBlock(row), email: row.email ?? null }));
}

export interface AttemptView {
  at: Date;
  emailTried: string | null;
  userId: string | null;
  ip: string | null;
  outcome: SignInOutcome;
  reason: string;
}

export async function listRecentAttempts(db: Db, limit = 100): Promise<AttemptView[]> {
  const rows = await db.selectFrom('sign_in_attempts').selectAll().orderBy('at', 'desc').orderBy('id', 'desc').limit(limit).execute();
  return rows.map((r) => ({ at: r.at, emailTried: r.email_tried, userId: r.user_id, ip: r.ip, outcome: r.outcome, reason: r.reason }));
}

/** The user's own successful sign-ins (time and IP), newest first: for the account page. */
export async function listSignIns(db: Db, userId: string, limit = 10): Promise<Array<{ at: Date; ip: string | null }>> {
  return db
    .selectFrom('sign_in_attempts')
    .select(['at', 'ip'])
    .where('user_id', '=', userId)
    .where('outcome', '=', 'success')
    .orderBy('at', 'desc')
    .limit(limit)
    .execute();
}

function toBlock(row: { id: string; scope: BlockScope; key: string; until: Date; level: number; created_at: Date }): Block {
  return { id: String(row.id), scope: row.scope, key: row.key, until: row.until, level: row.level, createdAt: row.created_at };
}

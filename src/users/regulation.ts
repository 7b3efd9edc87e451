// Brute-force regulation of sign-in: every attempt is a row, blocks are derived from the rows in a window.
import { recordAudit } from './audit.js';
import { normalizeIp } from './ip.js';
import { addToRequestLog } from './request-log.js';
import { createHmac } from 'node:crypto';
import { isIP } from 'node:net';
import { sql, type Kysely, type Transaction } from 'kysely';
import type { Clock } from '../clock.js';
import type { RegulationConfig } from '../config.js';
import type { Database, Db } from '../db/database.js';
import type { BlockScope, SignInOutcome } from './users.tables.js';

export interface Regulator {
  db: Kysely<Database>;
  clock: Clock;
  settings: RegulationConfig;
  /** Keys the hash of an address that named no account (`storedAddress`). */
  addressKey: Buffer;
}

export interface Attempt {
  /** As typed; stored as typed only when it named an account (`storedAddress`). */
  emailTried: string;
  userId: string | null;
  ip: string;
  outcome: SignInOutcome;
  /** For the log and the operator page only: 'wrong_password', 'unknown_email', 'ip_blocked', ... */
  reason: string;
  /** A right password for an account with two-factor on: only the first of two steps succeeded. */
  secondStepDue?: boolean;
}

export interface Block {
  id: string;
  scope: BlockScope;
  key: string;
  until: Date;
  level: number;
  createdAt: Date;
}

export { normalizeIp };

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
  return `${groups
    .slice(0, 4)
    .map((g) => parseInt(g, 16).toString(16))
    .join(':')}::/64`;
}

/**
 * The block that stops this attempt, if any: the IP's first (it covers every account tried from
 * there), then the account's.
 */
export async function findActiveBlock(
  regulator: Regulator,
  ip: string,
  userId: string | null,
  db: Db = regulator.db,
): Promise<Block | null> {
  const now = regulator.clock.now();
  let query = db
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
 * Serialises everything that counts or blocks one account and one address: always the account's
 * lock first, then the address's, so two transactions never wait for each other in a circle.
 */
async function lockKeys(trx: Transaction<Database>, userId: string | null, ip: string): Promise<void> {
  if (userId !== null) await sql`select pg_advisory_xact_lock(hashtext(${`archway-block:user:${userId}`}))`.execute(trx);
  await sql`select pg_advisory_xact_lock(hashtext(${`archway-block:ip:${addressBlockKey(ip)}`}))`.execute(trx);
}

/** What the attempt row keeps of the address typed: see `storedAddress`. */
function attemptRow(regulator: Regulator, attempt: Omit<Attempt, 'outcome' | 'reason'>, now: Date) {
  return {
    at: now,
    email_tried: storedAddress(regulator.addressKey, attempt.emailTried, attempt.userId !== null),
    user_id: attempt.userId,
    ip: normalizeIp(attempt.ip),
  };
}

/**
 * The address field as the attempt row keeps it. One that named an account is kept as typed; any
 * other may be a password typed into the wrong field, so only a keyed hash of it is kept: the
 * operator can still see the same unknown text tried again and again, never the text itself.
 */
export function storedAddress(key: Buffer, typed: string, matchedAccount: boolean): string {
  const text = typed.trim();
  if (matchedAccount) return text.slice(0, 320);
  return `${UNKNOWN_ADDRESS_PREFIX}${createHmac('sha256', key).update(text.toLowerCase(), 'utf8').digest('hex').slice(0, 32)}`;
}

const UNKNOWN_ADDRESS_PREFIX = 'hmac:';

/** How the operator page shows a stored address: an unknown one as a short fingerprint, never the text. */
export function displayedAddress(stored: string | null): string | null {
  if (stored === null || !stored.startsWith(UNKNOWN_ADDRESS_PREFIX)) return stored;
  return `unknown address #${stored.slice(UNKNOWN_ADDRESS_PREFIX.length, UNKNOWN_ADDRESS_PREFIX.length + 8)}`;
}

/** The key of `storedAddress`, derived from the password pepper so that no new secret has to be configured. */
export function addressHashKey(pepper: string): Buffer {
  return createHmac('sha256', pepper).update('archway sign-in address v1').digest();
}

/** The reason of an admitted attempt whose password is still being checked: a failure until settled. */
const CHECKING = 'checking';

export type Admission = { admitted: true; attemptId: string } | { admitted: false; reason: string };

/**
 * Lets one password check go ahead, or not, atomically: with the account and the address locked, it
 * re-checks the blocks, counts the failures in the window together with the checks still under way,
 * and records this attempt (as a failure until `settleAttempt` says otherwise) before any argon2 work.
 * So 30 wrong passwords sent at once get no more checks than 30 sent one by one: the limit's.
 */
export async function admitAttempt(regulator: Regulator, attempt: Omit<Attempt, 'outcome' | 'reason'>): Promise<Admission> {
  return regulator.db.transaction().execute(async (trx) => {
    const now = regulator.clock.now();
    await lockKeys(trx, attempt.userId, attempt.ip);
    const refuse = async (reason: string): Promise<Admission> => {
      await trx
        .insertInto('sign_in_attempts')
        .values({ ...attemptRow(regulator, attempt, now), outcome: 'blocked', reason })
        .execute();
      await logPasswordStep(trx, regulator, now, { ...attempt, outcome: 'blocked', reason });
      return { admitted: false, reason };
    };
    const block = await findActiveBlock(regulator, attempt.ip, attempt.userId, trx);
    if (block !== null) return refuse(block.scope === 'ip' ? 'ip_blocked' : 'user_blocked');
    // As one by one: with the failures at the limit (say, a block just ended), one more check may run,
    // and its failure starts the next block; checks still under way count as failures meanwhile.
    const full = async (scope: BlockScope, key: string, threshold: number) => {
      const state = await blockState(trx, regulator, scope, key, now);
      return state.failures >= threshold && state.checking > 0;
    };
    const s = regulator.settings;
    if (await full('ip', addressBlockKey(attempt.ip), s.ipMaxFailures)) return refuse('ip_limit_reached');
    if (attempt.userId !== null && (await full('user', attempt.userId, s.userMaxFailures))) return refuse('user_limit_reached');
    const row = await trx
      .insertInto('sign_in_attempts')
      .values({ ...attemptRow(regulator, attempt, now), outcome: 'failure', reason: CHECKING })
      .returning('id')
      .executeTakeFirstOrThrow();
    return { admitted: true, attemptId: String(row.id) };
  });
}

/** Gives an admitted attempt its outcome; after a failure, blocks what reached its limit. Returns the blocks it created. */
export async function settleAttempt(regulator: Regulator, attemptId: string, attempt: Attempt): Promise<Block[]> {
  return regulator.db.transaction().execute(async (trx) => {
    await trx
      .updateTable('sign_in_attempts')
      .set({ outcome: attempt.outcome, reason: attempt.reason, user_id: attempt.userId })
      .where('id', '=', attemptId)
      .execute();
    await logPasswordStep(trx, regulator, regulator.clock.now(), attempt);
    return attempt.outcome === 'failure' ? blockWhatIsDue(trx, regulator, attempt) : [];
  });
}

/** The password step as the request log shows it. */
async function logPasswordStep(trx: Transaction<Database>, regulator: Regulator, at: Date, attempt: Attempt): Promise<void> {
  const address = storedAddress(regulator.addressKey, attempt.emailTried, attempt.userId !== null);
  await addToRequestLog(trx, {
    at,
    userId: attempt.userId,
    ip: attempt.ip,
    kind: 'sign-in',
    // A right password with two-factor due is its own event: counted as a sign-in, it would hide a failing second step.
    event: attempt.secondStepDue === true ? 'password-code-due' : 'password',
    outcome: attempt.outcome,
    detail: { reason: attempt.reason, ...(attempt.userId === null ? { address: displayedAddress(address) } : {}) },
  });
}

/** Removes an admitted attempt that turned out not to be a sign-in attempt at all (see two-factor settings). */
export async function forgetAttempt(regulator: Regulator, attemptId: string): Promise<void> {
  await regulator.db.deleteFrom('sign_in_attempts').where('id', '=', attemptId).execute();
}

async function blockWhatIsDue(trx: Transaction<Database>, regulator: Regulator, attempt: Attempt): Promise<Block[]> {
  const now = regulator.clock.now();
  await lockKeys(trx, attempt.userId, attempt.ip);
  const created: Block[] = [];
  const ipBlock = await blockIfDue(trx, regulator, 'ip', addressBlockKey(attempt.ip), now);
  if (ipBlock !== null) created.push(ipBlock);
  if (attempt.userId !== null) {
    const userBlock = await blockIfDue(trx, regulator, 'user', attempt.userId, now);
    if (userBlock !== null) created.push(userBlock);
  }
  return created;
}

/** Called with both keys locked (`lockKeys`), so concurrent failures of one key make one block, not one each. */
async function blockIfDue(
  trx: Transaction<Database>,
  regulator: Regulator,
  scope: BlockScope,
  key: string,
  now: Date,
): Promise<Block | null> {
  const s = regulator.settings;
  const state = await blockState(trx, regulator, scope, key, now);
  const threshold = scope === 'ip' ? s.ipMaxFailures : s.userMaxFailures;
  if (state.active || state.failures < threshold) return null;
  const level = state.earlier + 1;
  const until = new Date(now.getTime() + blockDurationMs(s, scope, level));
  const row = await trx.insertInto('blocks').values({ scope, key, until, level, created_at: now }).returningAll().executeTakeFirstOrThrow();
  await addToRequestLog(trx, {
    at: now,
    userId: scope === 'user' ? key : null,
    ip: scope === 'ip' ? key : null,
    kind: 'block',
    event: 'started',
    outcome: 'blocked',
    detail: { scope: scope === 'ip' ? `address ${key}` : 'account', until: until.toISOString(), level, block: String(row.id) },
  });
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
): Promise<{ active: boolean; failures: number; checking: number; earlier: number }> {
  const s = regulator.settings;
  const windowStart = new Date(now.getTime() - (scope === 'ip' ? s.ipWindowMinutes : s.userWindowMinutes) * 60_000);
  const escalationStart = new Date(now.getTime() - s.escalationHours * 3_600_000);
  // A check takes well under a second; a row still marked as under way after a minute is a crashed request's.
  const checkingStart = new Date(now.getTime() - 60_000);
  // An address key is a range (IPv4 /32, IPv6 /64): every attempt from inside it counts.
  const matches = scope === 'ip' ? sql`a.ip <<= ${key}::inet` : sql`a.user_id = ${key}::uuid`;
  const lastSuccess =
    scope === 'user'
      ? sql`(select max(s.at) from sign_in_attempts s where s.user_id = ${key}::uuid and s.outcome = 'success')`
      : sql`null::timestamptz`;
  const result = await sql<{ active: boolean; failures: string; checking: string; earlier: string }>`
    select
      exists (select 1 from blocks b where b.scope = ${scope} and b.key = ${key} and b.lifted_at is null and b.until > ${now}) as active,
      (select count(*) from sign_in_attempts a
        where ${matches} and a.outcome = 'failure'
          and a.at > greatest(
            ${windowStart}::timestamptz,
            (select max(b.lifted_at) from blocks b where b.scope = ${scope} and b.key = ${key}),
            ${lastSuccess})) as failures,
      (select count(*) from sign_in_attempts a
        where ${matches} and a.outcome = 'failure' and a.reason = ${CHECKING} and a.at > ${checkingStart}::timestamptz) as checking,
      (select count(*) from blocks b
        where b.scope = ${scope} and b.key = ${key} and b.lifted_at is null and b.created_at > ${escalationStart}) as earlier
  `.execute(trx);
  const row = result.rows[0]!;
  return { active: row.active, failures: Number(row.failures), checking: Number(row.checking), earlier: Number(row.earlier) };
}

/** Length of the level-th block: the first length doubled per level, never above the maximum. */
export function blockDurationMs(s: RegulationConfig, scope: BlockScope, level: number): number {
  const first = scope === 'ip' ? s.ipBlockMinutes * 60_000 : s.userBlockSeconds * 1_000;
  const max = scope === 'ip' ? s.ipBlockMaxMinutes * 60_000 : s.userBlockMaxMinutes * 60_000;
  return Math.min(first * 2 ** Math.min(level - 1, 30), max);
}

/**
 * The operator's unblock: the row stays (who lifted it, when), counting starts afresh for that
 * key, and the audit log records it in the same transaction.
 */
export async function liftBlock(
  regulator: Regulator,
  blockId: string,
  operator: { id: string; ip: string; reason?: string },
): Promise<Block | null> {
  if (!/^\d{1,18}$/.test(blockId)) return null;
  return regulator.db.transaction().execute(async (trx) => {
    const row = await trx
      .updateTable('blocks')
      .set({ lifted_at: regulator.clock.now(), lifted_by: operator.id })
      .where('id', '=', blockId)
      .where('lifted_at', 'is', null)
      .returningAll()
      .executeTakeFirst();
    if (row === undefined) return null;
    const block = toBlock(row);
    await recordAudit(trx, {
      actor: operator.id,
      action: 'sign-in.unblocked',
      subject: block.scope === 'user' ? block.key : null,
      ip: operator.ip,
      detail: {
        blockId: block.id,
        scope: block.scope,
        level: block.level,
        ...(operator.reason !== undefined ? { reason: operator.reason } : {}),
      },
    });
    return block;
  });
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
  return rows.map((r) => ({
    at: r.at,
    emailTried: displayedAddress(r.email_tried),
    userId: r.user_id,
    ip: r.ip,
    outcome: r.outcome,
    reason: r.reason,
  }));
}

function toBlock(row: { id: string; scope: BlockScope; key: string; until: Date; level: number; created_at: Date }): Block {
  return { id: String(row.id), scope: row.scope, key: row.key, until: row.until, level: row.level, createdAt: row.created_at };
}

// Brute-force regulation of the second sign-in step: wrong codes counted per user and per IP, apart from wrong passwords.
import { addToRequestLog } from '../users/request-log.js';
import { sql, type Kysely, type Transaction } from 'kysely';
import { recordAudit } from '../users/audit.js';
import { addressBlockKey, normalizeIp } from '../users/regulation.js';
import type { Database, Db } from '../db/database.js';

/**
 * The numbers (docs/SECURITY.md, "Two-factor and remember-me"): three codes are accepted at any
 * time, so a guess succeeds with probability 3 in a million. 5 wrong codes pause the account's
 * second step for 15 minutes, doubling with each further pause within a week up to a day: an
 * attacker who already has the password gets about 5 guesses a day, well under 1 % in a year, and
 * the owner is emailed at every pause. The owner, who mistypes once or twice, never meets the
 * limit. An IP guessing across many accounts is stopped after 20.
 */
export const TWO_FACTOR_LIMITS = {
  userMaxFailures: 5,
  userWindowMinutes: 15,
  userBlockMinutes: 15,
  ipMaxFailures: 20,
  ipWindowMinutes: 15,
  ipBlockMinutes: 60,
  maxBlockMinutes: 24 * 60,
  escalationDays: 7,
} as const;

export interface TwoFactorBlock {
  id: string;
  scope: 'ip' | 'user';
  key: string;
  until: Date;
}

/** The key a scope counts and blocks under: the account, or the address's range (IPv4 /32, IPv6 /64, as for passwords). */
function keyOf(scope: 'ip' | 'user', userId: string, ip: string): string {
  return scope === 'user' ? userId : addressBlockKey(ip);
}

export async function findTwoFactorBlock(db: Db, now: Date, userId: string, ip: string): Promise<TwoFactorBlock | null> {
  const row = await db
    .selectFrom('two_factor_blocks')
    .select(['id', 'scope', 'key', 'until'])
    .where('lifted_at', 'is', null)
    .where('until', '>', now)
    .where((eb) =>
      eb.or([
        eb.and([eb('scope', '=', 'user'), eb('key', '=', userId)]),
        eb.and([eb('scope', '=', 'ip'), eb('key', '=', keyOf('ip', userId, ip))]),
      ]),
    )
    .orderBy('until', 'desc')
    .executeTakeFirst();
  return row === undefined ? null : { ...row, id: String(row.id) };
}

/** The account's lock first, then the address's: the same order everywhere, so no two transactions wait in a circle. */
async function lockKeys(trx: Transaction<Database>, userId: string, ip: string): Promise<void> {
  for (const scope of ['user', 'ip'] as const) {
    await sql`select pg_advisory_xact_lock(hashtext(${`archway-two-factor:${scope}:${keyOf(scope, userId, ip)}`}))`.execute(trx);
  }
}

/** Wrong codes (and codes still being checked) of the key since the window opened or its last block started. */
async function countSinceLastBlock(trx: Transaction<Database>, scope: 'ip' | 'user', key: string, now: Date): Promise<number> {
  const windowMinutes = scope === 'user' ? TWO_FACTOR_LIMITS.userWindowMinutes : TWO_FACTOR_LIMITS.ipWindowMinutes;
  const windowStart = new Date(now.getTime() - windowMinutes * 60_000);
  // Failures before the last block of this key were already paid for: count only those after it.
  const last = await trx
    .selectFrom('two_factor_blocks')
    .select('created_at')
    .where('scope', '=', scope)
    .where('key', '=', key)
    .orderBy('created_at', 'desc')
    .executeTakeFirst();
  const from = last !== undefined && last.created_at > windowStart ? last.created_at : windowStart;
  const count = await trx
    .selectFrom('two_factor_failures')
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .where(scope === 'user' ? sql<boolean>`user_id = ${key}::uuid` : sql<boolean>`ip <<= ${key}::inet`)
    .where('at', '>', from)
    .executeTakeFirstOrThrow();
  return Number(count.n);
}

const maxFailures = (scope: 'ip' | 'user'): number =>
  scope === 'user' ? TWO_FACTOR_LIMITS.userMaxFailures : TWO_FACTOR_LIMITS.ipMaxFailures;

/**
 * Lets one code be checked, or not, atomically: with the account and the address locked, it re-checks
 * the blocks, counts the wrong codes in the window together with the checks still under way, and
 * records this one (as wrong until a right code clears the account's rows) before the check. So 40
 * codes sent at once get no more checks than 40 sent one by one: the limit's. Returns the row's id.
 */
export async function admitTwoFactorAttempt(db: Kysely<Database>, now: Date, userId: string, ip: string): Promise<string | null> {
  return db.transaction().execute(async (trx) => {
    await lockKeys(trx, userId, ip);
    if ((await findTwoFactorBlock(trx, now, userId, ip)) !== null) return null;
    for (const scope of ['user', 'ip'] as const) {
      if ((await countSinceLastBlock(trx, scope, keyOf(scope, userId, ip), now)) >= maxFailures(scope)) return null;
    }
    const row = await trx
      .insertInto('two_factor_failures')
      .values({ at: now, user_id: userId, ip: normalizeIp(ip) })
      .returning('id')
      .executeTakeFirstOrThrow();
    return String(row.id);
  });
}

/**
 * After a wrong code (its row is already there from the admission): blocks each key whose count
 * reached the limit and has no active block. Run in the caller's transaction, which also queues the
 * owner's email, so one burst makes one block and one email. Returns the blocks it started.
 */
export async function blockTwoFactorIfDue(trx: Transaction<Database>, now: Date, userId: string, ip: string): Promise<TwoFactorBlock[]> {
  await lockKeys(trx, userId, ip);
  const created: TwoFactorBlock[] = [];
  for (const scope of ['user', 'ip'] as const) {
    const key = keyOf(scope, userId, ip);
    const active = await trx
      .selectFrom('two_factor_blocks')
      .select('id')
      .where('scope', '=', scope)
      .where('key', '=', key)
      .where('lifted_at', 'is', null)
      .where('until', '>', now)
      .executeTakeFirst();
    if (active !== undefined || (await countSinceLastBlock(trx, scope, key, now)) < maxFailures(scope)) continue;
    const earlier = await trx
      .selectFrom('two_factor_blocks')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .where('scope', '=', scope)
      .where('key', '=', key)
      .where('lifted_at', 'is', null)
      .where('created_at', '>', new Date(now.getTime() - TWO_FACTOR_LIMITS.escalationDays * 86_400_000))
      .executeTakeFirstOrThrow();
    const minutes = twoFactorBlockMinutes(scope, Number(earlier.n) + 1);
    const row = await trx
      .insertInto('two_factor_blocks')
      .values({ scope, key, until: new Date(now.getTime() + minutes * 60_000), created_at: now })
      .returning(['id', 'scope', 'key', 'until'])
      .executeTakeFirstOrThrow();
    await addToRequestLog(trx, {
      at: now,
      userId,
      ip,
      kind: 'block',
      event: 'started',
      outcome: 'blocked',
      detail: {
        scope: scope === 'ip' ? `two-factor, address ${key}` : 'two-factor, account',
        until: row.until.toISOString(),
        block: String(row.id),
      },
    });
    created.push({ ...row, id: String(row.id) });
  }
  return created;
}

/** The length of the level-th block of a key within the escalation window: doubled each time, at most a day. */
export function twoFactorBlockMinutes(scope: 'ip' | 'user', level: number): number {
  const first = scope === 'user' ? TWO_FACTOR_LIMITS.userBlockMinutes : TWO_FACTOR_LIMITS.ipBlockMinutes;
  return Math.min(first * 2 ** Math.min(level - 1, 20), TWO_FACTOR_LIMITS.maxBlockMinutes);
}

/** A right code clears the account's count (not the IP's: one good account does not excuse guessing at others). */
export async function clearUserFailures(db: Db, userId: string): Promise<void> {
  await db.deleteFrom('two_factor_failures').where('user_id', '=', userId).execute();
}

/**
 * Failure rows matter only within the window; older ones (and their IPs) go. Ended blocks are kept
 * as long as they count towards the next one's length, but an IP block (its key is an address)
 * never longer than the IP retention period.
 */
export async function purgeOldTwoFactorFailures(db: Db, now: Date, ipRetentionDays: number): Promise<number> {
  const keepMinutes = Math.max(TWO_FACTOR_LIMITS.userWindowMinutes, TWO_FACTOR_LIMITS.ipWindowMinutes) * 2;
  const result = await db
    .deleteFrom('two_factor_failures')
    .where('at', '<', new Date(now.getTime() - keepMinutes * 60_000))
    .executeTakeFirst();
  const days = (scope: 'ip' | 'user') =>
    scope === 'ip' ? Math.min(TWO_FACTOR_LIMITS.escalationDays, ipRetentionDays) : TWO_FACTOR_LIMITS.escalationDays;
  for (const scope of ['ip', 'user'] as const) {
    await db
      .deleteFrom('two_factor_blocks')
      .where('scope', '=', scope)
      .where('until', '<', new Date(now.getTime() - days(scope) * 86_400_000))
      .executeTakeFirst();
  }
  return Number(result.numDeletedRows);
}

/**
 * The operator lifts a two-factor block: the row stays (who lifted it, when) and the audit log
 * records it in the same transaction. Null when no active block has that id.
 */
export async function liftTwoFactorBlock(
  db: Kysely<Database>,
  now: Date,
  blockId: string,
  operator: { id: string; ip: string; reason: string },
): Promise<TwoFactorBlock | null> {
  if (!/^\d{1,18}$/.test(blockId)) return null;
  return db.transaction().execute(async (trx) => {
    const row = await trx
      .updateTable('two_factor_blocks')
      .set({ lifted_at: now, lifted_by: operator.id })
      .where('id', '=', blockId)
      .where('lifted_at', 'is', null)
      .returning(['id', 'scope', 'key', 'until'])
      .executeTakeFirst();
    if (row === undefined) return null;
    await recordAudit(trx, {
      actor: operator.id,
      action: 'two-factor.unblocked',
      subject: row.scope === 'user' ? row.key : null,
      ip: operator.ip,
      detail: { blockId: String(row.id), scope: row.scope, reason: operator.reason },
      at: now,
    });
    return { ...row, id: String(row.id) };
  });
}

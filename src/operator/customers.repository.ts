// The operator's customer directory: search by email, domain or subscription id, and everything stored about one customer.
import { sql, type Kysely } from 'kysely';
import { loadAccountOverview, type AccountOverview } from '../accounts/account-overview.js';
import type { Database } from '../db/database.js';
import { addressBlockKey } from '../users/regulation.js';
import { toUser, type User } from '../users/user.repository.js';

export const CUSTOMER_PAGE_SIZE = 50;
/** Long enough for any email address (254), domain (253) or PayPal subscription id. */
export const MAX_SEARCH_LENGTH = 254;
export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export type SearchQuery = { term: string; after: string | null };
export type ParsedSearch = { ok: true; query: SearchQuery } | { ok: false; term: string; error: string };

/** Checks the query string; every problem is a 400 with a sentence the operator can act on. */
export function parseCustomerSearch(raw: Record<string, unknown>): ParsedSearch {
  const { q, after } = raw;
  if (q !== undefined && typeof q !== 'string') return { ok: false, term: '', error: 'Give one search term only.' };
  const term = (q ?? '').trim();
  if (term.length > MAX_SEARCH_LENGTH)
    return { ok: false, term: '', error: `The search term is longer than ${MAX_SEARCH_LENGTH} characters; no address, domain or id is.` };
  if (/[\u0000-\u001f\u007f]/.test(term))
    return { ok: false, term: '', error: 'The search term contains characters no address, domain or subscription id has.' };
  if (after !== undefined && (typeof after !== 'string' || !UUID.test(after)))
    return { ok: false, term, error: 'That page link is not valid. Search again.' };
  return { ok: true, query: { term, after: after ?? null } };
}

/** `%`, `_` and `\` typed by the operator match themselves, not any text. */
function likePattern(text: string): string {
  return `%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/** One page of customers ordered by email; keyset paging on (email, id). Null `nextAfter` on the last page. */
export async function searchCustomers(
  db: Kysely<Database>,
  query: SearchQuery,
  pageSize = CUSTOMER_PAGE_SIZE,
): Promise<{ customers: User[]; nextAfter: string | null }> {
  let select = db.selectFrom('users').selectAll().where('role', '=', 'customer');
  if (query.term !== '') {
    const pattern = likePattern(query.term);
    select = select.where((eb) =>
      eb.or([eb('email', 'ilike', pattern), eb('domain', 'ilike', pattern), eb('paypal_subscription_id', 'ilike', pattern)]),
    );
  }
  if (query.after !== null) {
    select = select.where(sql<boolean>`(users.email, users.id) > (select email, id from users where id = ${query.after})`);
  }
  const rows = await select
    .orderBy('email')
    .orderBy('id')
    .limit(pageSize + 1)
    .execute();
  const shown = rows.slice(0, pageSize).map(toUser);
  return { customers: shown, nextAfter: rows.length > pageSize ? (shown[shown.length - 1]?.id ?? null) : null };
}

export interface CustomerFile {
  overview: AccountOverview;
  suspensionReason: string | null;
  rememberLogins: Array<{ createdAt: Date; lastUsedAt: Date; expiresAt: Date; ip: string | null; userAgent: string | null }>;
  twoFactor: { on: boolean; since: Date | null; recoveryCodesLeft: number };
  archives: Array<{ requestedAt: Date; snapshot: string; state: string; requestedIp: string | null; finishedAt: Date | null }>;
  blocks: Array<{ kind: 'sign-in' | 'two-factor'; id: string; scope: 'ip' | 'user'; key: string; until: Date }>;
}

/** How many archive requests and sign-in attempts the customer page lists. */
const RECENT = 20;

/** Everything the operator's customer page shows, without a secret (no session id, token hash or two-factor secret). */
export async function loadCustomerFile(db: Kysely<Database>, userId: string, now: Date, idleMinutes: number): Promise<CustomerFile | null> {
  if (!UUID.test(userId)) return null;
  const overview = await loadAccountOverview(db, userId, now, idleMinutes);
  if (overview === null || overview.account.role !== 'customer') return null;
  const [suspension, remember, twoFactor, codes, archives, attemptIps] = await Promise.all([
    db
      .selectFrom('audit_log')
      .select('detail')
      .where('subject', '=', userId)
      .where('action', '=', 'user.suspended')
      .orderBy('id', 'desc')
      .executeTakeFirst(),
    db
      .selectFrom('remember_logins')
      .select(['created_at', 'last_used_at', 'expires_at', 'ip', 'user_agent'])
      .where('user_id', '=', userId)
      .where('replaced_at', 'is', null)
      .where('expires_at', '>', now)
      .orderBy('last_used_at', 'desc')
      .execute(),
    db.selectFrom('two_factor').select('enabled_at').where('user_id', '=', userId).executeTakeFirst(),
    db
      .selectFrom('two_factor_recovery_codes')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .where('user_id', '=', userId)
      .where('used_at', 'is', null)
      .executeTakeFirstOrThrow(),
    db
      .selectFrom('archive_requests')
      .select(['requested_at', 'snapshot', 'state', 'requested_ip', 'finished_at'])
      .where('user_id', '=', userId)
      .orderBy('requested_at', 'desc')
      .limit(RECENT)
      .execute(),
    db
      .selectFrom('sign_in_attempts')
      .select('ip')
      .distinct()
      .where('user_id', '=', userId)
      .where('ip', 'is not', null)
      .limit(RECENT)
      .execute(),
  ]);
  // Blocks concerning this customer: the account's own, and those of the addresses it signed in from.
  const ipKeys = [...new Set(attemptIps.flatMap((a) => (a.ip === null ? [] : [addressBlockKey(a.ip)])))];
  const concerns = sql<boolean>`((scope = 'user' and key = ${userId}) or (scope = 'ip' and key = any(${ipKeys}::text[])))`;
  const [signInBlocks, twoFactorBlocks] = await Promise.all([
    db
      .selectFrom('blocks')
      .select(['id', 'scope', 'key', 'until'])
      .where('lifted_at', 'is', null)
      .where('until', '>', now)
      .where(concerns)
      .execute(),
    db
      .selectFrom('two_factor_blocks')
      .select(['id', 'scope', 'key', 'until'])
      .where('lifted_at', 'is', null)
      .where('until', '>', now)
      .where(concerns)
      .execute(),
  ]);
  const reason = overview.account.status === 'suspended' ? suspension?.detail.reason : undefined;
  return {
    overview,
    suspensionReason: typeof reason === 'string' ? reason : null,
    rememberLogins: remember.map((r) => ({
      createdAt: r.created_at,
      lastUsedAt: r.last_used_at,
      expiresAt: r.expires_at,
      ip: r.ip,
      userAgent: r.user_agent,
    })),
    twoFactor: { on: twoFactor?.enabled_at != null, since: twoFactor?.enabled_at ?? null, recoveryCodesLeft: Number(codes.n) },
    archives: archives.map((a) => ({
      requestedAt: a.requested_at,
      snapshot: a.snapshot,
      state: a.state,
      requestedIp: a.requested_ip,
      finishedAt: a.finished_at,
    })),
    blocks: [
      ...signInBlocks.map((b) => ({ kind: 'sign-in' as const, id: String(b.id), scope: b.scope, key: b.key, until: b.until })),
      ...twoFactorBlocks.map((b) => ({ kind: 'two-factor' as const, id: String(b.id), scope: b.scope, key: b.key, until: b.until })),
    ],
  };
}

// Split tokens for invitation and password-reset links: a selector to find the row, a verifier only its hash is kept of.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { AccountTokenPurpose } from './accounts.tables.js';
import type { Db } from '../db/database.js';

/** A reset link works for one hour (the issue's figure); an invitation gives the customer a week to act. */
export const TOKEN_LIFETIME_MS: Record<AccountTokenPurpose, number> = {
  invitation: 7 * 24 * 60 * 60 * 1000,
  password_reset: 60 * 60 * 1000,
};

// 128-bit selector, 256-bit verifier, both base64url, joined by a dot that base64url never contains.
const TOKEN = /^([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{43})$/;

export interface UsableToken {
  id: string;
  userId: string;
  purpose: AccountTokenPurpose;
  expiresAt: Date;
}

function hashVerifier(verifier: string): Buffer {
  return createHash('sha256').update(verifier, 'utf8').digest();
}

/** Stores a new token for the user and returns the only copy of its text, for the link in the email. */
export async function issueAccountToken(db: Db, userId: string, purpose: AccountTokenPurpose, now: Date): Promise<string> {
  const selector = randomBytes(16).toString('base64url');
  const verifier = randomBytes(32).toString('base64url');
  await db
    .insertInto('account_tokens')
    .values({
      user_id: userId,
      purpose,
      selector,
      verifier_hash: hashVerifier(verifier),
      created_at: now,
      expires_at: new Date(now.getTime() + TOKEN_LIFETIME_MS[purpose]),
    })
    .execute();
  return `${selector}.${verifier}`;
}

export function looksLikeToken(text: unknown): text is string {
  return typeof text === 'string' && TOKEN.test(text);
}

/**
 * The token's row if the text is a live token: right verifier (compared in constant time), not used,
 * not expired. Any failure is the same null, so a caller cannot tell a wrong verifier from an old link.
 */
export async function findUsableToken(db: Db, text: unknown, now: Date): Promise<UsableToken | null> {
  const match = typeof text === 'string' ? TOKEN.exec(text) : null;
  if (match === null) return null;
  const [, selector = '', verifier = ''] = match;
  const row = await db.selectFrom('account_tokens').selectAll().where('selector', '=', selector).executeTakeFirst();
  if (row === undefined) return null;
  const expected = Buffer.from(row.verifier_hash);
  const given = hashVerifier(verifier);
  if (expected.length !== given.length || !timingSafeEqual(expected, given)) return null;
  if (row.used_at !== null || row.expires_at.getTime() <= now.getTime()) return null;
  return { id: row.id, userId: row.user_id, purpose: row.purpose, expiresAt: row.expires_at };
}

/**
 * Marks the token used, and every other open token of the same user with it; false when someone else
 * used it first (two tabs, a replay), which the caller must treat as an unusable link.
 */
export async function consumeAccountToken(db: Db, token: UsableToken, now: Date): Promise<boolean> {
  const claimed = await db
    .updateTable('account_tokens')
    .set({ used_at: now })
    .where('id', '=', token.id)
    .where('used_at', 'is', null)
    .where('expires_at', '>', now)
    .executeTakeFirst();
  if (Number(claimed.numUpdatedRows) !== 1) return false;
  await db.updateTable('account_tokens').set({ used_at: now }).where('user_id', '=', token.userId).where('used_at', 'is', null).execute();
  return true;
}

/** How many reset links were sent to the user since `since`, to stop "forgot password" being used to flood an inbox. */
export async function countRecentTokens(db: Db, userId: string, purpose: AccountTokenPurpose, since: Date): Promise<number> {
  const row = await db
    .selectFrom('account_tokens')
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .where('user_id', '=', userId)
    .where('purpose', '=', purpose)
    .where('created_at', '>', since)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

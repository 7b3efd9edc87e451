// Re-encrypts stored TOTP secrets under the current key, for `archway keys rotate`.
import type { Kysely } from 'kysely';
import type { Database } from '../db/database.js';
import { UnknownEncryptionKey, type KeyRing } from './key-ring.js';

export interface RotationReport {
  /** Secrets that were under an older key and now are under the current one. */
  reEncrypted: number;
  /** Secrets already under the current key. */
  alreadyCurrent: number;
  /** Key ids of secrets that no configured key can read (left as they were). */
  unreadable: Record<string, number>;
}

/**
 * Each row is rewritten only if it still holds what was read, so a user enrolling or turning
 * two-factor off meanwhile is never overwritten with a stale secret. Safe to run again.
 */
export async function reEncryptSecrets(db: Kysely<Database>, keys: KeyRing): Promise<RotationReport> {
  const report: RotationReport = { reEncrypted: 0, alreadyCurrent: 0, unreadable: {} };
  const rows = await db.selectFrom('two_factor').select(['user_id', 'secret_encrypted']).execute();
  for (const row of rows) {
    const keyId = keys.keyIdIn(row.secret_encrypted) ?? 'unknown';
    if (keyId === keys.currentKeyId) {
      report.alreadyCurrent += 1;
      continue;
    }
    let secret: Buffer;
    try {
      secret = keys.decrypt(row.secret_encrypted, row.user_id);
    } catch (error) {
      const id = error instanceof UnknownEncryptionKey ? error.keyId : keyId;
      report.unreadable[id] = (report.unreadable[id] ?? 0) + 1;
      continue;
    }
    const updated = await db
      .updateTable('two_factor')
      .set({ secret_encrypted: keys.encrypt(secret, row.user_id) })
      .where('user_id', '=', row.user_id)
      .where('secret_encrypted', '=', row.secret_encrypted)
      .executeTakeFirst();
    secret.fill(0);
    if (Number(updated.numUpdatedRows) === 1) report.reEncrypted += 1;
  }
  return report;
}

/** How many secrets each key id holds, for `archway keys status`. */
export async function secretsByKey(db: Kysely<Database>, keys: KeyRing): Promise<Record<string, number>> {
  const rows = await db.selectFrom('two_factor').select('secret_encrypted').execute();
  const counts: Record<string, number> = {};
  for (const row of rows) {
    const id = keys.keyIdIn(row.secret_encrypted) ?? 'unknown';
    counts[id] = (counts[id] ?? 0) + 1;
  }
  return counts;
}

// Writes one row of the audit log, the operator's record of who changed what about an account, and its line in the request log.
import { sql } from 'kysely';
import type { Db } from '../db/database.js';
import type { LogKind, LogOutcome } from './users.tables.js';

export interface AuditEntry {
  /** A user id, 'cli' for the operator's command line, 'system', or null when unknown. */
  actor: string | null;
  action: string;
  subject: string | null;
  ip?: string | null;
  detail?: Record<string, unknown>;
  at?: Date;
}

/** Audited actions that the request log files with the archive or block they concern rather than the account. */
const AUDIT_IN_REQUEST_LOG: Record<string, [LogKind, string, LogOutcome]> = {
  'archive.requested': ['archive', 'requested', 'success'],
  'archive.cancelled': ['archive', 'cancelled', 'info'],
  'archive.link_sent': ['link', 'emailed', 'success'],
  'sign-in.unblocked': ['block', 'lifted', 'info'],
  'two-factor.unblocked': ['block', 'lifted', 'info'],
};

export async function recordAudit(db: Db, entry: AuditEntry): Promise<void> {
  await db
    .insertInto('audit_log')
    .values({
      actor: entry.actor,
      action: entry.action,
      subject: entry.subject,
      ip: entry.ip ?? null,
      detail: JSON.stringify(entry.detail ?? {}),
      ...(entry.at ? { at: entry.at } : {}),
    })
    .execute();
  // The operator reads the trail in the request log, next to the sign-ins and downloads around it.
  const subject = entry.subject;
  const [kind, event, outcome] = AUDIT_IN_REQUEST_LOG[entry.action] ?? ['account', entry.action, 'info'];
  await db
    .insertInto('request_log')
    .values((eb) => ({
      at: entry.at ?? new Date(),
      user_id:
        subject === null
          ? null
          : eb
              .selectFrom('users')
              .select('id')
              .where(sql<string>`id::text`, '=', subject),
      ip: entry.ip ?? null,
      kind,
      event,
      outcome,
      detail: JSON.stringify({ ...entry.detail, actor: entry.actor }),
    }))
    .execute();
}

/**
 * Removes audit rows older than `cutoff` from the start of the chain, through the owner's
 * `audit_purge()` (the portal's role cannot DELETE them itself). Returns how many went; when rows
 * are already missing from that part of the chain it removes nothing, so the evidence stays.
 */
export async function purgeOldAudit(db: Db, cutoff: Date): Promise<number | 'kept: the chain is broken'> {
  const { rows } = await sql<{ removed: string }>`select audit_purge(${cutoff}) as removed`.execute(db);
  const removed = Number(rows[0]?.removed ?? 0);
  return removed < 0 ? 'kept: the chain is broken' : removed;
}

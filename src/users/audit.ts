// Writes one row of the audit log, the operator's record of who changed what about an account.
import type { Db } from '../db/database.js';

export interface AuditEntry {
  /** A user id, 'cli' for the operator's command line, 'system', or null when unknown. */
  actor: string | null;
  action: string;
  subject: string | null;
  ip?: string | null;
  detail?: Record<string, unknown>;
  at?: Date;
}

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
}

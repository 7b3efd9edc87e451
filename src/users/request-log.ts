// Adds a row to the request log, the operator's one time-ordered record of security and archive events.
import type { Db } from '../db/database.js';
import { normalizeIp } from './ip.js';
import type { LogKind, LogOutcome } from './users.tables.js';

export interface LogEntry {
  at: Date;
  userId: string | null;
  ip?: string | null;
  kind: LogKind;
  /** What happened within the kind, e.g. 'password' or 'second-step' for a sign-in. */
  event: string;
  outcome: LogOutcome;
  detail?: Record<string, unknown>;
}

/** Run it in the transaction of the change it records, so the log holds what happened and nothing else. */
export async function addToRequestLog(db: Db, entry: LogEntry): Promise<void> {
  await db
    .insertInto('request_log')
    .values({
      at: entry.at,
      user_id: entry.userId,
      ip: entry.ip === undefined || entry.ip === null ? null : normalizeIp(entry.ip),
      kind: entry.kind,
      event: entry.event,
      outcome: entry.outcome,
      detail: JSON.stringify(entry.detail ?? {}),
    })
    .execute();
}

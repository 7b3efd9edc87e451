// Reads and writes of archive_requests; plain functions taking the database or a transaction.
import type { Selectable, Transaction } from 'kysely';
import type { Database, Db } from '../db/database.js';
import type { ArchiveRequestState, ArchiveRequestsTable } from './archives.tables.js';

/** One archive request as routes, views and jobs see it (bigints as numbers: archives stay far below 2^53 bytes). */
export interface ArchiveRequest {
  id: string;
  userId: string;
  customer: string;
  /** The fleet host it is built on: status, links and events of this archive come from there only. */
  backupHost: string;
  snapshot: string;
  archiveId: string | null;
  state: ArchiveRequestState;
  bytesWritten: number;
  filesWritten: number;
  percent: number | null;
  sizeBytes: number | null;
  sha256: string | null;
  failureReason: string | null;
  downloadFileName: string | null;
  requestedAt: Date;
  readyAt: Date | null;
  expiresAt: Date | null;
  finishedAt: Date | null;
  notifyDueAt: Date | null;
  notifyAttempts: number;
  notifiedAt: Date | null;
  lastNotifyError: string | null;
  /** Failed status calls in a row; the poller's backoff for this request. */
  pollFailures: number;
  /** From the backup host's download.completed event (the time is finishedAt). */
  downloadedIp: string | null;
  downloadedBytes: number | null;
  /** Bytes delivered so far over every link (resumed ranges counted once), and in how many responses; null before any. */
  deliveredBytes: number | null;
  deliveredParts: number | null;
  /** When the download receipt email was queued; null before the download completed. */
  receiptQueuedAt: Date | null;
}

/** States in which the backup host is still working on the request (the poller asks about these). */
export const ACTIVE_STATES: readonly ArchiveRequestState[] = ['requested', 'building'];

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Request ids come from URLs; anything that is not a lowercase UUID is simply not found. */
export function isRequestId(value: unknown): value is string {
  return typeof value === 'string' && UUID.test(value);
}

export function toArchiveRequest(row: Selectable<ArchiveRequestsTable>): ArchiveRequest {
  return {
    id: row.id,
    userId: row.user_id,
    customer: row.customer,
    backupHost: row.backup_host,
    snapshot: row.snapshot,
    archiveId: row.archive_id,
    state: row.state,
    bytesWritten: Number(row.bytes_written),
    filesWritten: Number(row.files_written),
    percent: row.percent,
    sizeBytes: row.size_bytes === null ? null : Number(row.size_bytes),
    sha256: row.sha256,
    failureReason: row.failure_reason,
    downloadFileName: row.download_file_name,
    requestedAt: row.requested_at,
    readyAt: row.ready_at,
    expiresAt: row.expires_at,
    finishedAt: row.finished_at,
    notifyDueAt: row.notify_due_at,
    notifyAttempts: row.notify_attempts,
    notifiedAt: row.notified_at,
    lastNotifyError: row.last_notify_error,
    pollFailures: row.poll_failures,
    downloadedIp: row.downloaded_ip,
    downloadedBytes: row.downloaded_bytes === null ? null : Number(row.downloaded_bytes),
    deliveredBytes: row.delivered_bytes === null ? null : Number(row.delivered_bytes),
    deliveredParts: row.delivered_parts,
    receiptQueuedAt: row.receipt_queued_at,
  };
}

/**
 * Records a new request in state "requested". Returns null when the user already has one
 * requested or building: the partial unique index decides, so two racing POSTs cannot both pass.
 */
export async function insertArchiveRequest(
  db: Db,
  values: { userId: string; customer: string; backupHost: string; snapshot: string; ip: string; now: Date },
): Promise<ArchiveRequest | null> {
  const row = await db
    .insertInto('archive_requests')
    .values({
      user_id: values.userId,
      customer: values.customer,
      backup_host: values.backupHost,
      snapshot: values.snapshot,
      requested_ip: values.ip,
      requested_at: values.now,
      next_poll_at: values.now,
    })
    .onConflict((oc) => oc.column('user_id').where('state', 'in', ['requested', 'building']).doNothing())
    .returningAll()
    .executeTakeFirst();
  return row === undefined ? null : toArchiveRequest(row);
}

/** The request with this id if it belongs to this user; anyone else's (or a malformed id) is null. */
/**
 * The request whose `column` came due longest ago, locked FOR UPDATE SKIP LOCKED: the caller keeps
 * it while it talks to the backup host, and another portal instance skips it instead of doing the
 * same work twice. Null when nothing is due (or everything due is someone else's right now).
 */
export async function claimDue(
  trx: Transaction<Database>,
  column: 'next_poll_at' | 'notify_due_at',
  now: Date,
  states?: readonly ArchiveRequestState[],
  host?: string,
): Promise<ArchiveRequest | null> {
  let query = trx.selectFrom('archive_requests').selectAll().where(column, '<=', now);
  if (states !== undefined) query = query.where('state', 'in', states);
  if (host !== undefined) query = query.where('backup_host', '=', host);
  const row = await query.orderBy(column).limit(1).forUpdate().skipLocked().executeTakeFirst();
  return row === undefined ? null : toArchiveRequest(row);
}

/** The host's active requests due longest, locked (FOR UPDATE SKIP LOCKED): another poller takes the next ones. */
export async function claimDueOnHost(trx: Transaction<Database>, host: string, now: Date, limit: number): Promise<ArchiveRequest[]> {
  const rows = await trx
    .selectFrom('archive_requests')
    .selectAll()
    .where('backup_host', '=', host)
    .where('state', 'in', ACTIVE_STATES)
    .where('next_poll_at', '<=', now)
    .orderBy('next_poll_at')
    .limit(limit)
    .forUpdate()
    .skipLocked()
    .execute();
  return rows.map(toArchiveRequest);
}

export async function findRequest(db: Db, id: string): Promise<ArchiveRequest | null> {
  const row = await db.selectFrom('archive_requests').selectAll().where('id', '=', id).executeTakeFirst();
  return row === undefined ? null : toArchiveRequest(row);
}

export async function findOwnedRequest(db: Db, userId: string, id: unknown): Promise<ArchiveRequest | null> {
  if (!isRequestId(id)) return null;
  const row = await db.selectFrom('archive_requests').selectAll().where('id', '=', id).where('user_id', '=', userId).executeTakeFirst();
  return row === undefined ? null : toArchiveRequest(row);
}

export async function findActiveRequest(db: Db, userId: string): Promise<ArchiveRequest | null> {
  const row = await db
    .selectFrom('archive_requests')
    .selectAll()
    .where('user_id', '=', userId)
    .where('state', 'in', ACTIVE_STATES)
    .executeTakeFirst();
  return row === undefined ? null : toArchiveRequest(row);
}

/** When the user's newest completed download finished, or null: the request cooldown runs from it. */
export async function lastDownloadedAt(db: Db, userId: string): Promise<Date | null> {
  const row = await db
    .selectFrom('archive_requests')
    .select('finished_at')
    .where('user_id', '=', userId)
    .where('state', '=', 'downloaded')
    .where('finished_at', 'is not', null)
    .orderBy('finished_at', 'desc')
    .limit(1)
    .executeTakeFirst();
  return row?.finished_at ?? null;
}

export async function listRecentRequests(db: Db, userId: string, limit = 10): Promise<ArchiveRequest[]> {
  const rows = await db
    .selectFrom('archive_requests')
    .selectAll()
    .where('user_id', '=', userId)
    .orderBy('requested_at', 'desc')
    .limit(limit)
    .execute();
  return rows.map(toArchiveRequest);
}

/**
 * Records the backup host's archive id, and moves the request to "building" only if it is still
 * "requested": the owner may have cancelled it while archive.create was running. Says whether it moved.
 */
export async function markBuilding(db: Db, id: string, archiveId: string, nextPollAt: Date): Promise<boolean> {
  const moved = await db
    .updateTable('archive_requests')
    .set({ archive_id: archiveId, state: 'building', next_poll_at: nextPollAt })
    .where('id', '=', id)
    .where('state', '=', 'requested')
    .executeTakeFirst();
  if (Number(moved.numUpdatedRows) > 0) return true;
  // Kept for the operator's request log, which joins the backup host's events by archive id.
  await db.updateTable('archive_requests').set({ archive_id: archiveId }).where('id', '=', id).where('archive_id', 'is', null).execute();
  return false;
}

/**
 * Ends a request as failed or cancelled. Leaving "requested"/"building" is what frees the
 * one-build-per-user index, so every path that gives up on a request ends here.
 */
export async function markFinished(db: Db, id: string, state: 'failed' | 'cancelled', reason: string | null, now: Date): Promise<void> {
  await db
    .updateTable('archive_requests')
    .set({ state, failure_reason: reason, finished_at: now, notify_due_at: null })
    .where('id', '=', id)
    .execute();
}

/** Of these backup-host archive ids, the ones some request already holds. */
export async function knownArchiveIds(db: Db, archiveIds: readonly string[]): Promise<Set<string>> {
  if (archiveIds.length === 0) return new Set();
  const rows = await db.selectFrom('archive_requests').select('archive_id').where('archive_id', 'in', archiveIds).execute();
  return new Set(rows.map((r) => r.archive_id).filter((id): id is string => id !== null));
}

/**
 * The customer's newest requests that never got an archive id (any state): a build the backup host
 * has for one of their snapshots may be theirs. A request still within the cut-off may be waiting for it.
 */
export async function unconfirmedRequests(db: Db, customer: string): Promise<Array<{ id: string; snapshot: string; requestedAt: Date }>> {
  const rows = await db
    .selectFrom('archive_requests')
    .select(['id', 'snapshot', 'requested_at'])
    .where('customer', '=', customer)
    .where('archive_id', 'is', null)
    .orderBy('requested_at', 'desc')
    .limit(50)
    .execute();
  return rows.map((r) => ({ id: r.id, snapshot: r.snapshot, requestedAt: r.requested_at }));
}

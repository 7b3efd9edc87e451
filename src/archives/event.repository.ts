// Reads and writes of the backup host's copied events and of how far they have been copied.
import type { Kysely, Transaction } from 'kysely';
import type { Database, Db } from '../db/database.js';
import type { DeliveredSoFar } from '../protocol/index.js';

/** The name of the one host the single-host settings configure (and of the rows from before the fleet). */
export const DEFAULT_HOST = 'default';

/** One event as the portal stores it (the dispatcher's DispatcherEvent, checked and typed for the database). */
export interface StoredEvent {
  seq: number;
  at: Date;
  type: string;
  customer: string;
  archiveId: string;
  ip: string | null;
  bytes: number | null;
  detail: string | null;
  /** Download events: the archive's bytes delivered so far over all its links, each once (not stored with the event). */
  delivered?: DeliveredSoFar;
}

export interface SyncStatus {
  host: string;
  lastSeq: number;
  syncedAt: Date | null;
  lastError: string | null;
}

/** Creates the host's progress row if it is missing; never waits for, or touches, an existing one. */
export async function ensureSyncRow(db: Kysely<Database>, host: string): Promise<void> {
  await db
    .insertInto('backup_host_sync')
    .values({ host })
    .onConflict((oc) => oc.column('host').doNothing())
    .execute();
}

/**
 * Leases the host's progress row until `until`, or returns null when another sync (here or in another
 * portal instance) holds an unexpired lease: that one is copying, so this one need not.
 */
export async function claimSyncRow(db: Db, host: string, now: Date, until: Date): Promise<SyncStatus | null> {
  const row = await db
    .updateTable('backup_host_sync')
    .set({ leased_until: until })
    .where('host', '=', host)
    .where((eb) => eb.or([eb('leased_until', 'is', null), eb('leased_until', '<=', now)]))
    .returningAll()
    .executeTakeFirst();
  return row === undefined ? null : toStatus(row);
}

/**
 * Extends a sync's lease after a page, while the row is still where that sync started; false when
 * another sync has moved it on (this one's lease had run out), so the rest of its pages are wasted.
 */
export async function renewSyncLease(db: Db, host: string, lastSeq: number, until: Date): Promise<boolean> {
  const result = await db
    .updateTable('backup_host_sync')
    .set({ leased_until: until })
    .where('host', '=', host)
    .where('last_seq', '=', String(lastSeq))
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

/** The row's last_seq under its lock, for the short transaction that stores a sync's events. */
export async function lockedLastSeq(trx: Transaction<Database>, host: string): Promise<number> {
  const row = await trx.selectFrom('backup_host_sync').select('last_seq').where('host', '=', host).forUpdate().executeTakeFirstOrThrow();
  return Number(row.last_seq);
}

/** Every host's progress row, by name. */
export async function readSyncStatuses(db: Kysely<Database>): Promise<SyncStatus[]> {
  const rows = await db.selectFrom('backup_host_sync').selectAll().orderBy('host').execute();
  return rows.map(toStatus);
}

function toStatus(row: { host: string; last_seq: string; synced_at: Date | null; last_error: string | null }): SyncStatus {
  return { host: row.host, lastSeq: Number(row.last_seq), syncedAt: row.synced_at, lastError: row.last_error };
}

/** Inserts the events; ones already stored are skipped. Returns the ones that were new, in seq order. */
export async function insertEvents(trx: Transaction<Database>, host: string, events: StoredEvent[]): Promise<StoredEvent[]> {
  if (events.length === 0) return [];
  const inserted = await trx
    .insertInto('backup_host_events')
    .values(
      events.map((e) => ({
        host,
        seq: e.seq,
        at: e.at,
        type: e.type,
        customer: e.customer,
        archive_id: e.archiveId,
        ip: e.ip,
        bytes: e.bytes,
        detail: e.detail,
      })),
    )
    .onConflict((oc) => oc.columns(['host', 'seq']).doNothing())
    .returning('seq')
    .execute();
  const fresh = new Set(inserted.map((r) => Number(r.seq)));
  return events.filter((e) => fresh.has(e.seq));
}

export async function recordSyncDone(trx: Transaction<Database>, host: string, lastSeq: number, at: Date): Promise<void> {
  await trx
    .updateTable('backup_host_sync')
    .set({ last_seq: lastSeq, synced_at: at, last_error: null, leased_until: null })
    .where('host', '=', host)
    .execute();
}

/** Keeps last_seq and synced_at (the last good sync) and says what went wrong since. */
export async function recordSyncFailed(db: Db, host: string, error: string): Promise<void> {
  await db.updateTable('backup_host_sync').set({ last_error: error, leased_until: null }).where('host', '=', host).execute();
}

/**
 * The one state change each event type may make to an archive request, and the states it may make
 * it from. Anything else (an event out of order, a repeated one, or one for a request already
 * finished) changes nothing: a downloaded archive that later expires stays "downloaded".
 */
const TRANSITIONS = {
  'download.completed': { to: 'downloaded', from: ['ready'] },
  'archive.expired': { to: 'expired', from: ['requested', 'building', 'ready'] },
} as const;

/**
 * Applies an event's transition to the matching request (same archive id and customer); a completed
 * download also records its address and bytes. Returns the request and its new state, or null when
 * no row changed (unknown archive, wrong state, or no transition).
 */
export async function applyEventTransition(
  trx: Transaction<Database>,
  host: string,
  event: StoredEvent,
): Promise<{ requestId: string; state: 'downloaded' | 'expired' } | null> {
  const rule = TRANSITIONS[event.type as keyof typeof TRANSITIONS] as (typeof TRANSITIONS)[keyof typeof TRANSITIONS] | undefined;
  if (rule === undefined) {
    if (event.type === 'download.interrupted') await recordDelivered(trx, event);
    return null;
  }
  // A resumed download's last response sent only its range: the whole archive's count is in delivered.
  const delivered = event.delivered ? { delivered_bytes: event.delivered.bytes, delivered_parts: event.delivered.parts } : {};
  const download =
    rule.to === 'downloaded' ? { downloaded_ip: event.ip, downloaded_bytes: event.delivered?.bytes ?? event.bytes, ...delivered } : {};
  const row = await trx
    .updateTable('archive_requests')
    .set({ state: rule.to, finished_at: event.at, ...download })
    .where('archive_id', '=', event.archiveId)
    // An event speaks only for its own host's archives, and names the customer; a mismatch is not this request's.
    .where('backup_host', '=', host)
    .where('customer', '=', event.customer)
    .where('state', 'in', [...rule.from])
    .returning('id')
    .executeTakeFirst();
  return row === undefined ? null : { requestId: row.id, state: rule.to };
}

/** A partial download: how much the archive's links have delivered so far, for the download page. */
async function recordDelivered(trx: Transaction<Database>, event: StoredEvent): Promise<void> {
  if (!event.delivered) return;
  await trx
    .updateTable('archive_requests')
    .set({ delivered_bytes: event.delivered.bytes, delivered_parts: event.delivered.parts })
    .where('archive_id', '=', event.archiveId)
    .where('customer', '=', event.customer)
    .where('state', '=', 'ready')
    .execute();
}

/** An event as the request log shows it. */
export type EventRow = StoredEvent;

/** The key of an archive in eventsForArchives' answer: archive ids are unique per host only. */
export const archiveKey = (host: string, archiveId: string): string => `${host}/${archiveId}`;

/** Every stored event of these archives, oldest first, grouped by archiveKey(host, archive id). */
export async function eventsForArchives(
  db: Kysely<Database>,
  archives: { host: string; archiveId: string }[],
): Promise<Map<string, EventRow[]>> {
  const byArchive = new Map<string, EventRow[]>();
  if (archives.length === 0) return byArchive;
  const wanted = new Set(archives.map((a) => archiveKey(a.host, a.archiveId)));
  const rows = await db
    .selectFrom('backup_host_events')
    .select(['host', 'seq', 'at', 'type', 'customer', 'archive_id', 'ip', 'bytes', 'detail'])
    .where('archive_id', 'in', [...new Set(archives.map((a) => a.archiveId))])
    .orderBy('seq')
    .execute();
  for (const r of rows) {
    const key = archiveKey(r.host, r.archive_id);
    if (!wanted.has(key)) continue;
    const list = byArchive.get(key) ?? [];
    list.push({
      seq: Number(r.seq),
      at: r.at,
      type: r.type,
      customer: r.customer,
      archiveId: r.archive_id,
      ip: r.ip,
      bytes: r.bytes === null ? null : Number(r.bytes),
      detail: r.detail,
    });
    byArchive.set(key, list);
  }
  return byArchive;
}

/** The account that asked for this archive, if the portal has its request. */
export async function findArchiveOwner(db: Db, host: string, customer: string, archiveId: string): Promise<string | null> {
  const row = await db
    .selectFrom('archive_requests')
    .select('user_id')
    .where('archive_id', '=', archiveId)
    .where('backup_host', '=', host)
    .where('customer', '=', customer)
    .executeTakeFirst();
  return row?.user_id ?? null;
}

// Copies the backup host's events (events.since) into the portal, in order and once, and applies the
// state changes the portal learns only from them: a completed download and an expired archive.
import type { ArchiveJobContext } from '../context.js';
import { isIP } from 'node:net';
import type { FastifyBaseLogger } from 'fastify';
import type { Kysely, Transaction } from 'kysely';
import { startLoop } from '../background-loop.js';
import type { BackupHost } from '../backup-host/index.js';
import { queueDownloadReceipt } from './download-receipt.js';
import { addToRequestLog, type LogEntry } from '../users/request-log.js';
import type { Clock } from '../clock.js';
import type { Database } from '../db/database.js';
import type { MailQueue } from '../mail/mail.service.js';
import { isArchiveId, isCustomer, type DeliveredSoFar, type DispatcherEvent } from '../protocol/index.js';
import {
  applyEventTransition,
  ensureSyncRow,
  insertEvents,
  claimSyncRow,
  lockedLastSeq,
  recordSyncDone,
  recordSyncFailed,
  renewSyncLease,
  type StoredEvent,
  DEFAULT_HOST,
  findArchiveOwner,
} from './event.repository.js';

/** Events per events.since call (the protocol allows up to 1000). */
export const EVENT_PAGE_SIZE = 500;

/**
 * Pages per sync. A sync stores what it fetched in one transaction, so a long backlog is copied in
 * several syncs of at most this many pages rather than in one unbounded transaction.
 */
export const EVENT_PAGES_PER_SYNC = 20;

/** How often `archway serve` syncs: a download shows up on the operator page within this. */
export const EVENT_SYNC_INTERVAL_MS = 20_000;

const MAX_DETAIL_CHARS = 2000;
const MAX_ERROR_CHARS = 1000;

export interface EventSyncDeps {
  db: Kysely<Database>;
  backupHost: Pick<BackupHost, 'eventsSince'>;
  clock: Clock;
  /** The portal's address, for the links in the download receipt. */
  publicUrl: string;
  mail: MailQueue;
  log?: FastifyBaseLogger;
  host?: string;
  pageSize?: number;
  maxPages?: number;
}

export type EventSyncResult =
  /** `more`: the page limit was reached with full pages; sync again to copy the rest. */
  | { outcome: 'synced'; received: number; lastSeq: number; more: boolean; downloaded: number; expired: number }
  /** Another sync (here or in another portal instance) holds the progress row; it does the work. */
  | { outcome: 'busy' }
  /** Nothing was stored; last_seq is unchanged and last_error says why. */
  | { outcome: 'failed'; lastSeq: number; error: string };

/** A problem with what the backup host sent, as opposed to not reaching it. */
export class MalformedEventError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MalformedEventError';
  }
}

/**
 * How long a sync holds its host's row before another instance may take over: one page's call,
 * bounded by the backup host client's 30 s timeout, and a short transaction. Each page renews it,
 * so a crashed instance's sync is taken over within this, however many pages it had left.
 */
export const EVENT_SYNC_LEASE_MS = 3 * 30_000;

/**
 * One sync: leases the host's progress row (a second instance skips instead of copying the same
 * events), pages through events.since after last_seq with no transaction open, then in one short
 * transaction stores the events, applies their transitions and advances last_seq, unless another
 * sync advanced it meanwhile (after this one's lease ran out). A failure stores nothing of the sync
 * and records only last_error.
 */
export async function syncBackupHostEvents(deps: EventSyncDeps): Promise<EventSyncResult> {
  const host = deps.host ?? DEFAULT_HOST;
  const pageSize = deps.pageSize ?? EVENT_PAGE_SIZE;
  const maxPages = deps.maxPages ?? EVENT_PAGES_PER_SYNC;
  await ensureSyncRow(deps.db, host);
  const now = deps.clock.now();
  const leaseFromNow = () => new Date(deps.clock.now().getTime() + EVENT_SYNC_LEASE_MS);
  const row = await claimSyncRow(deps.db, host, now, leaseFromNow());
  if (row === null) return { outcome: 'busy' };
  try {
    const renew = () => renewSyncLease(deps.db, host, row.lastSeq, leaseFromNow());
    const fetched = await fetchEvents(deps, row.lastSeq, pageSize, maxPages, renew);
    if (fetched === null) return { outcome: 'busy' };
    const stored = await deps.db.transaction().execute(async (trx) => {
      if ((await lockedLastSeq(trx, host)) !== row.lastSeq) return null;
      const counts = await storeEvents(trx, deps, host, fetched.events);
      await recordSyncDone(trx, host, fetched.lastSeq, deps.clock.now());
      return counts;
    });
    if (stored === null) return { outcome: 'busy' };
    const result = { received: fetched.events.length, lastSeq: fetched.lastSeq, more: fetched.more, ...stored };
    if (result.received > 0) deps.log?.info({ host, ...result }, 'backup host events copied');
    return { outcome: 'synced', ...result };
  } catch (error) {
    const message = describeError(error);
    await recordSyncFailed(deps.db, host, message);
    deps.log?.warn({ host, lastSeq: row.lastSeq, reason: message }, 'backup host events not copied; trying again at the next sync');
    return { outcome: 'failed', lastSeq: row.lastSeq, error: message };
  }
}

/** Every page after `fromSeq`, checked, up to maxPages, renewing the lease after each; nothing is stored yet. */
async function fetchEvents(deps: EventSyncDeps, fromSeq: number, pageSize: number, maxPages: number, renew: () => Promise<boolean>) {
  let lastSeq = fromSeq;
  const events: StoredEvent[] = [];
  for (let page = 1; ; page++) {
    const answer = await deps.backupHost.eventsSince({ after: lastSeq, limit: pageSize });
    // The dispatcher's lastSeq is its newest event; below ours means its log was replaced (a
    // reinstall): copying from 0 again would mix two histories under one host name.
    if (answer.events.length === 0 && answer.lastSeq < lastSeq) {
      throw new MalformedEventError(
        `the backup host's newest event is ${answer.lastSeq}, but the portal has copied up to ${lastSeq}; its event log seems to have been replaced`,
      );
    }
    const pageEvents = checkEvents(answer.events, lastSeq, pageSize);
    events.push(...pageEvents);
    if (pageEvents.length > 0) lastSeq = pageEvents[pageEvents.length - 1]!.seq;
    if (pageEvents.length < pageSize) return { events, lastSeq, more: false };
    if (page >= maxPages) return { events, lastSeq, more: true };
    if (!(await renew())) return null;
  }
}

async function storeEvents(trx: Transaction<Database>, deps: EventSyncDeps, host: string, events: StoredEvent[]) {
  let downloaded = 0;
  let expired = 0;
  for (const event of await insertEvents(trx, host, events)) {
    const changed = await applyEventTransition(trx, host, event);
    await addToRequestLog(trx, {
      ...requestLogLine(event.type),
      at: event.at,
      userId: await findArchiveOwner(trx, host, event.customer, event.archiveId),
      ip: event.ip,
      detail: {
        archive: event.archiveId,
        ...(event.bytes === null ? {} : { bytes: event.bytes }),
        ...(event.delivered ? { delivered: event.delivered } : {}),
        host,
        seq: event.seq,
      },
    });
    if (changed?.state === 'downloaded') {
      downloaded++;
      // In the same transaction as the state change: both happen once, or (on a rollback) neither.
      await queueDownloadReceipt(trx, deps.mail, changed.requestId, deps.clock.now(), deps.publicUrl);
    }
    if (changed?.state === 'expired') expired++;
  }
  return { downloaded, expired };
}

/** Where each backup host event goes in the request log; the host's own words for its side of the story. */
const HOST_EVENTS_IN_REQUEST_LOG: Record<string, Pick<LogEntry, 'kind' | 'event' | 'outcome'>> = {
  'archive.requested': { kind: 'archive', event: 'build-started', outcome: 'info' },
  'archive.ready': { kind: 'archive', event: 'ready', outcome: 'success' },
  'archive.failed': { kind: 'archive', event: 'failed', outcome: 'failure' },
  'archive.cancelled': { kind: 'archive', event: 'build-stopped', outcome: 'info' },
  'archive.expired': { kind: 'archive', event: 'expired', outcome: 'info' },
  'archive.armed': { kind: 'link', event: 'armed', outcome: 'info' },
  'link.issued': { kind: 'link', event: 'issued', outcome: 'success' },
  'link.expired': { kind: 'link', event: 'expired', outcome: 'info' },
  'download.completed': { kind: 'download', event: 'completed', outcome: 'success' },
  'download.interrupted': { kind: 'download', event: 'interrupted', outcome: 'failure' },
};

function requestLogLine(type: string): Pick<LogEntry, 'kind' | 'event' | 'outcome'> {
  return HOST_EVENTS_IN_REQUEST_LOG[type] ?? { kind: 'archive', event: type, outcome: 'info' };
}

/**
 * The answer's shape was checked by the client; each event is checked here before it is stored:
 * seq strictly increasing after `after`, the fields the protocol promises, an IP that is an IP.
 */
function checkEvents(raw: unknown, after: number, pageSize: number): StoredEvent[] {
  if (!Array.isArray(raw)) throw new MalformedEventError('the backup host answered events.since without a list of events');
  if (raw.length > pageSize)
    throw new MalformedEventError(`the backup host sent ${raw.length} events where at most ${pageSize} were asked for`);
  const events: StoredEvent[] = [];
  let previous = after;
  for (const item of raw as Partial<DispatcherEvent>[]) {
    const seq = item?.seq;
    const bad = (what: string) => new MalformedEventError(`the backup host sent a malformed event (seq ${String(seq)}): ${what}`);
    if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq <= previous) throw bad(`seq is not a number after ${previous}`);
    const at = typeof item.time === 'string' ? new Date(item.time) : null;
    if (at === null || Number.isNaN(at.getTime())) throw bad('time is not a date');
    if (typeof item.type !== 'string' || !/^[a-z]+(\.[a-z]+)*$/.test(item.type) || item.type.length > 64)
      throw bad('type is not an event type');
    if (!isCustomer(item.customer)) throw bad('customer is not a domain');
    if (!isArchiveId(item.archiveId)) throw bad('archiveId is not an archive id');
    if (item.ip !== null && (typeof item.ip !== 'string' || isIP(item.ip) === 0)) throw bad('ip is not an IP address');
    if (item.bytes !== null && (typeof item.bytes !== 'number' || !Number.isSafeInteger(item.bytes) || item.bytes < 0))
      throw bad('bytes is not a byte count');
    if (item.detail !== null && typeof item.detail !== 'string') throw bad('detail is not text');
    const delivered = checkDelivered(item.delivered);
    if (delivered === null) throw bad('delivered is not a count of bytes and parts');
    events.push({
      seq,
      at,
      type: item.type,
      customer: item.customer,
      archiveId: item.archiveId,
      ip: item.ip ?? null,
      bytes: item.bytes ?? null,
      // Shown to the operator only; a runaway detail must not fill the table.
      detail: item.detail === null || item.detail === undefined ? null : item.detail.slice(0, MAX_DETAIL_CHARS),
      ...(delivered === undefined ? {} : { delivered }),
    });
    previous = seq;
  }
  return events;
}

/** A download event's delivered count: absent (older dispatchers), or whole byte counts with bytes <= total; null if malformed. */
function checkDelivered(value: unknown): DeliveredSoFar | undefined | null {
  if (value === undefined) return undefined;
  if (typeof value !== 'object' || value === null) return null;
  const { bytes, total, parts } = value as Record<string, unknown>;
  const count = (n: unknown): n is number => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
  if (!count(bytes) || !count(total) || !count(parts) || bytes > total) return null;
  return { bytes, total, parts };
}

function describeError(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.replace(/\s+/g, ' ').trim().slice(0, MAX_ERROR_CHARS) || 'unknown error';
}

/**
 * Syncs each fleet host at once and then every `intervalMs`, and again at once while a backlog
 * remains. With no backup host configured the stopper has nothing to stop. The stopper
 * resolves once the sync in hand has finished, so the database pool is not closed under it.
 */
export function startEventSync(
  ctx: ArchiveJobContext,
  options: { intervalMs?: number; backupHost?: Pick<BackupHost, 'eventsSince'> } = {},
): () => Promise<void> {
  const names = ctx.backupHosts.names.length > 0 || options.backupHost === undefined ? ctx.backupHosts.names : [DEFAULT_HOST];
  const intervalMs = options.intervalMs ?? EVENT_SYNC_INTERVAL_MS;
  // One loop per host, each with its own cursor: a host that is down delays only its own customers' events.
  const stops = names.map((host) => {
    // Looked up at each call, not here: settings that cannot work (a missing SSH key file) then end
    // up in last_error on the operator's page at every sync, instead of stopping `archway serve`.
    const backupHost: Pick<BackupHost, 'eventsSince'> = options.backupHost ?? {
      eventsSince: async (request) => ctx.backupHosts.use(host).eventsSince(request),
    };
    const log = ctx.log.child({ component: 'event-sync', host });
    return startLoop(async () => {
      try {
        const result = await syncBackupHostEvents({
          db: ctx.database.db,
          backupHost,
          host,
          clock: ctx.clock,
          publicUrl: ctx.config.publicUrl,
          mail: ctx.mail,
          log,
        });
        if (result.outcome === 'synced' && result.more) return 0;
      } catch (error) {
        // The database itself failed (down, restarting); the events wait on the backup host.
        log.error({ reason: (error as Error).message }, 'event sync could not reach the database; trying again later');
      }
      return intervalMs;
    });
  });
  return async () => {
    await Promise.all(stops.map((stop) => stop()));
  };
}

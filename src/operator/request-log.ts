// The operator's request log: archive requests newest first, with who asked, from where, and what the backup host recorded.
import { sql, type Kysely } from 'kysely';
import type { ArchiveRequestState } from '../archives/archives.tables.js';
import { archiveKey, eventsForArchives, type EventRow } from '../archives/event.repository.js';
import type { Database } from '../db/database.js';

export const REQUEST_LOG_PAGE_SIZE = 50;
/** Long enough for any email address (254) or domain (253). */
export const MAX_FILTER_LENGTH = 254;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export interface RequestLogQuery {
  /** Part of a customer's email address or domain; empty for all requests. */
  filter: string;
  /** The id of the last request on the previous page; null for the newest. */
  before: string | null;
}

export type ParsedQuery = { ok: true; query: RequestLogQuery } | { ok: false; filter: string; error: string };

/** Checks the query string; every problem is a 400 with a sentence the operator can act on. */
export function parseRequestLogQuery(raw: Record<string, unknown>): ParsedQuery {
  const q = raw.q;
  const before = raw.before;
  if (q !== undefined && typeof q !== 'string') return { ok: false, filter: '', error: 'Give one search term only.' };
  const filter = (q ?? '').trim();
  if (filter.length > MAX_FILTER_LENGTH)
    return {
      ok: false,
      filter: '',
      error: `The search term is longer than ${MAX_FILTER_LENGTH} characters; no email address or domain is that long.`,
    };
  // A control character is never part of an address and would only confuse the page or the log.
  if (/[\u0000-\u001f\u007f]/.test(filter))
    return { ok: false, filter: '', error: 'The search term contains characters that cannot be part of an email address or domain.' };
  if (before !== undefined && (typeof before !== 'string' || !UUID.test(before))) {
    return { ok: false, filter, error: 'That page link is not valid. Start again from the newest requests.' };
  }
  return { ok: true, query: { filter, before: before ?? null } };
}

export interface RequestLogEntry {
  id: string;
  email: string;
  domain: string | null;
  customer: string;
  snapshot: string;
  archiveId: string | null;
  state: ArchiveRequestState;
  requestedAt: Date;
  requestedIp: string | null;
  sizeBytes: number | null;
  finishedAt: Date | null;
  failureReason: string | null;
  linkEmail: LinkEmailStatus | null;
  events: EventRow[];
}

/** The "ready" email as the operator needs to know it: a customer who never got it cannot download. */
export type LinkEmailStatus =
  | { kind: 'due'; at: Date }
  | { kind: 'sent'; at: Date }
  | { kind: 'retrying'; attempts: number; error: string; nextAt: Date }
  | { kind: 'given-up'; attempts: number; error: string };

function linkEmailStatus(r: {
  notified_at: Date | null;
  notify_due_at: Date | null;
  notify_attempts: number;
  last_notify_error: string | null;
}): LinkEmailStatus | null {
  // A successful send clears the error, so an error means the latest attempt failed.
  if (r.last_notify_error !== null) {
    return r.notify_due_at !== null
      ? { kind: 'retrying', attempts: r.notify_attempts, error: r.last_notify_error, nextAt: r.notify_due_at }
      : { kind: 'given-up', attempts: r.notify_attempts, error: r.last_notify_error };
  }
  if (r.notify_due_at !== null) return { kind: 'due', at: r.notify_due_at };
  return r.notified_at !== null ? { kind: 'sent', at: r.notified_at } : null;
}

export type RequestLogPage = { found: true; entries: RequestLogEntry[]; nextBefore: string | null } | { found: false };

/** `%`, `_` and `\` typed by the operator match themselves, not any text. */
function likePattern(text: string): string {
  return `%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/**
 * One page of requests, newest first, with their events. The cursor is the last request shown;
 * a cursor that names no request (deleted with its account, or made up) gives `found: false`.
 */
export async function readRequestLog(
  db: Kysely<Database>,
  query: RequestLogQuery,
  pageSize = REQUEST_LOG_PAGE_SIZE,
): Promise<RequestLogPage> {
  if (query.before !== null) {
    const cursor = await db.selectFrom('archive_requests').select('id').where('id', '=', query.before).executeTakeFirst();
    if (cursor === undefined) return { found: false };
  }
  let select = db
    .selectFrom('archive_requests as r')
    .innerJoin('users as u', 'u.id', 'r.user_id')
    .select([
      'r.id',
      'u.email',
      'u.domain',
      'r.customer',
      'r.snapshot',
      'r.archive_id',
      'r.backup_host',
      'r.state',
      'r.requested_at',
      'r.requested_ip',
      'r.size_bytes',
      'r.finished_at',
      'r.failure_reason',
      'r.notified_at',
      'r.notify_due_at',
      'r.notify_attempts',
      'r.last_notify_error',
    ]);
  if (query.filter !== '') {
    const pattern = likePattern(query.filter);
    select = select.where((eb) =>
      eb.or([eb('u.email', 'ilike', pattern), eb('u.domain', 'ilike', pattern), eb('r.customer', 'ilike', pattern)]),
    );
  }
  if (query.before !== null) {
    // Keyset paging: stable while new requests arrive, and no OFFSET scan on a long log.
    select = select.where(
      sql<boolean>`(r.requested_at, r.id) < (select requested_at, id from archive_requests where id = ${query.before})`,
    );
  }
  const rows = await select
    .orderBy('r.requested_at', 'desc')
    .orderBy('r.id', 'desc')
    .limit(pageSize + 1)
    .execute();
  const shown = rows.slice(0, pageSize);
  const events = await eventsForArchives(
    db,
    shown.flatMap((r) => (r.archive_id === null ? [] : [{ host: r.backup_host, archiveId: r.archive_id }])),
  );
  const entries = shown.map((r) => ({
    id: r.id,
    email: r.email,
    domain: r.domain,
    customer: r.customer,
    snapshot: r.snapshot,
    archiveId: r.archive_id,
    backupHost: r.backup_host,
    state: r.state,
    requestedAt: r.requested_at,
    requestedIp: r.requested_ip,
    sizeBytes: r.size_bytes === null ? null : Number(r.size_bytes),
    finishedAt: r.finished_at,
    failureReason: r.failure_reason,
    linkEmail: linkEmailStatus(r),
    // Events of this archive id for another customer are not this request's story.
    events: (r.archive_id === null ? [] : (events.get(archiveKey(r.backup_host, r.archive_id)) ?? [])).filter(
      (e) => e.customer === r.customer,
    ),
  }));
  return { found: true, entries, nextBefore: rows.length > pageSize ? (shown[shown.length - 1]?.id ?? null) : null };
}

/** What each event type means, in the operator's words. */
const EVENT_LABELS: Record<string, string> = {
  'archive.requested': 'Build started on the backup host',
  'archive.ready': 'Archive ready',
  'archive.failed': 'Build failed',
  'archive.cancelled': 'Cancelled',
  'archive.armed': 'New download token (an email sent, or the emailed one used and replaced)',
  'link.issued': 'Link issued',
  'download.completed': 'Download completed',
  'download.interrupted': 'Download interrupted',
  'link.expired': 'Link expired unused',
  'archive.expired': 'Archive expired',
};

export function eventLabel(type: string): string {
  return EVENT_LABELS[type] ?? type;
}

export function formatTime(at: Date | null): string {
  return at === null ? '' : at.toISOString().slice(0, 19).replace('T', ' ');
}

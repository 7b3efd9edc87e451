// Validators that turn untrusted stdin into a typed request, refusing anything not exactly right.
import { DEFAULT_MAX_REQUEST_BYTES, MAX_ARCHIVE_STATUSES, type Action } from './actions.js';
import { isPlainObject } from './envelope.js';
import { canonicalIp, isArchiveId, isCustomer, isSnapshotName, isToken, isTokenHash } from './patterns.js';
import type { Requests } from './types.js';

export type Validation<T> = { ok: true; value: T } | { ok: false; problem: string };

type FieldCheck = (v: unknown) => boolean;
interface FieldSpec {
  check: FieldCheck;
  optional?: boolean;
}

const isIntInRange =
  (min: number, max: number): FieldCheck =>
  (v) =>
    typeof v === 'number' && Number.isSafeInteger(v) && v >= min && v <= max;

const customer: FieldSpec = { check: isCustomer };
const archiveId: FieldSpec = { check: isArchiveId };

/**
 * 1..MAX_ARCHIVE_STATUSES entries, each exactly {customer, archiveId}, no archive id twice: an id
 * names one archive, so a repeat is a caller's bug or a probe, never a need.
 */
function isArchiveRefList(v: unknown): boolean {
  if (!Array.isArray(v) || v.length < 1 || v.length > MAX_ARCHIVE_STATUSES) return false;
  const seen = new Set<string>();
  for (const entry of v as unknown[]) {
    if (!isPlainObject(entry) || Object.keys(entry).sort().join(',') !== 'archiveId,customer') return false;
    if (!isCustomer(entry.customer) || !isArchiveId(entry.archiveId) || seen.has(entry.archiveId)) return false;
    seen.add(entry.archiveId);
  }
  return true;
}

/** Field specs per action; a request must have exactly these fields (optional ones may be absent). */
export const REQUEST_FIELDS: { readonly [A in Action]: Readonly<Record<string, FieldSpec>> } = {
  ping: {},
  'backups.list': { customer },
  'archive.create': { customer, snapshot: { check: isSnapshotName } },
  'archive.status': { customer, archiveId },
  'archive.statuses': { archives: { check: isArchiveRefList } },
  'archive.list': { customer },
  'archive.cancel': { customer, archiveId },
  'archive.arm': { customer, archiveId, tokenHash: { check: isTokenHash } },
  'link.issue': { customer, archiveId, token: { check: isToken }, clientIp: { check: (v) => canonicalIp(v) !== null } },
  'events.since': { after: { check: isIntInRange(0, Number.MAX_SAFE_INTEGER) }, limit: { check: isIntInRange(1, 1000), optional: true } },
  watch: {},
  sweep: {},
  check: {},
};

/** Checks an already-parsed value against the action's fields. Problems never echo the value. */
export function validateRequest<A extends Action>(action: A, input: unknown): Validation<Requests[A]> {
  const spec = REQUEST_FIELDS[action];
  if (!isPlainObject(input)) return { ok: false, problem: 'request is not a JSON object' };
  for (const key of Object.keys(input)) {
    if (!Object.prototype.hasOwnProperty.call(spec, key))
      return { ok: false, problem: `unknown field ${JSON.stringify(key.slice(0, 40))}` };
  }
  for (const [key, field] of Object.entries(spec)) {
    if (!Object.prototype.hasOwnProperty.call(input, key)) {
      if (field.optional) continue;
      return { ok: false, problem: `missing field ${key}` };
    }
    if (!field.check(input[key])) return { ok: false, problem: `invalid field ${key}` };
  }
  const value: Record<string, unknown> = { ...input };
  // The address is stored and signed in nginx's spelling, so later comparisons are exact.
  if (typeof value.clientIp === 'string') value.clientIp = canonicalIp(value.clientIp);
  return { ok: true, value: value as unknown as Requests[A] };
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Parses raw stdin: size cap first (before any decoding), then strict UTF-8, then exactly one
 * JSON object, then the action's fields.
 */
export function parseRequest<A extends Action>(
  action: A,
  raw: Uint8Array | string,
  maxBytes: number = DEFAULT_MAX_REQUEST_BYTES,
): Validation<Requests[A]> {
  const bytes = typeof raw === 'string' ? Buffer.from(raw, 'utf8') : raw;
  if (bytes.byteLength > maxBytes) return { ok: false, problem: `request larger than ${maxBytes} bytes` };
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    return { ok: false, problem: 'request is not UTF-8' };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { ok: false, problem: 'request is not one JSON object' };
  }
  return validateRequest(action, parsed);
}

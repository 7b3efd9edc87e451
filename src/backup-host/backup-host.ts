// The portal's typed view of one backup host: one function per dispatcher action, over any transport.
import {
  answerFrom,
  DEFAULT_MAX_REQUEST_BYTES,
  EXIT_DONE,
  EXIT_INTERNAL,
  EXIT_REFUSED,
  isPlainObject,
  MAX_ARCHIVE_STATUSES,
  parseAnswer,
  validateRequest,
  type ArchiveArmRequest,
  type ArchiveCancelRequest,
  type ArchiveCreateRequest,
  type ArchiveListRequest,
  type ArchiveRef,
  type ArchiveStatusResult,
  type ErrorCode,
  type RefusalReason,
  type ArchiveStatusRequest,
  type BackupsListRequest,
  type EventsSinceRequest,
  type LinkIssueRequest,
  type RemoteAction,
  type Requests,
  type Results,
} from '../protocol/index.js';
import { BackupHostInternalError, BackupHostLimited, BackupHostRefused } from './errors.js';
import type { RawOutcome, Transport } from './transport.js';

/** One archive's archive.status answer from an `archiveStatuses` call: its result, or the error archiveStatus would throw. */
export type ArchiveStatusOutcome =
  | { customer: string; archiveId: string; ok: true; status: ArchiveStatusResult }
  | { customer: string; archiveId: string; ok: false; error: BackupHostRefused | BackupHostInternalError };

export interface BackupHost {
  readonly describe: string;
  ping(): Promise<Results['ping']>;
  listBackups(request: BackupsListRequest): Promise<Results['backups.list']>;
  createArchive(request: ArchiveCreateRequest): Promise<Results['archive.create']>;
  archiveStatus(request: ArchiveStatusRequest): Promise<Results['archive.status']>;
  /**
   * archive.status for many archives with as few calls as fit (at most MAX_ARCHIVE_STATUSES each,
   * one for a typical poll): outcomes in the order asked. Throws only what fails a whole call
   * (unreachable, timeout, a refused call, a duplicate id in `refs`).
   */
  archiveStatuses(refs: readonly ArchiveRef[]): Promise<ArchiveStatusOutcome[]>;
  listArchives(request: ArchiveListRequest): Promise<Results['archive.list']>;
  cancelArchive(request: ArchiveCancelRequest): Promise<Results['archive.cancel']>;
  armArchive(request: ArchiveArmRequest): Promise<Results['archive.arm']>;
  issueLink(request: LinkIssueRequest): Promise<Results['link.issue']>;
  eventsSince(request: EventsSinceRequest): Promise<Results['events.since']>;
}

// Just enough shape checking that a garbled answer fails here, not deep inside a route.
type Shape = Readonly<Record<string, 'string' | 'number' | 'boolean' | 'object' | 'string|null' | 'number|null'>>;
const RESULT_SHAPES: { readonly [A in RemoteAction]: Shape } = {
  ping: { version: 'string', time: 'string', roots: 'object', freeBytes: 'number|null' },
  'backups.list': { snapshots: 'object' },
  'archive.create': { archiveId: 'string', state: 'string' },
  'archive.status': {
    state: 'string',
    bytesWritten: 'number',
    filesWritten: 'number',
    percent: 'number|null',
    sizeBytes: 'number|null',
    sha256: 'string|null',
    downloadFileName: 'string',
  },
  'archive.statuses': { statuses: 'object' },
  'archive.list': { archives: 'object' },
  'archive.cancel': { state: 'string' },
  'archive.arm': { armed: 'boolean' },
  'link.issue': { url: 'string', expires: 'number', lifetimeSeconds: 'number', fileName: 'string' },
  'events.since': { events: 'object', lastSeq: 'number' },
};

function matchesShape(value: Record<string, unknown>, shape: Shape): boolean {
  return Object.entries(shape).every(([key, kind]) => {
    const v = value[key];
    return kind.split('|').some((k) => (k === 'null' ? v === null : typeof v === k && v !== null));
  });
}

/** Turns one raw run into a result or a named error. Exported for the transports' tests. */
export function interpretOutcome<A extends RemoteAction>(action: A, outcome: RawOutcome): Results[A] {
  const answer = parseAnswer(outcome.stdout);
  if (outcome.exitCode === EXIT_DONE) {
    if (answer?.ok && matchesShape(answer.result as Record<string, unknown>, RESULT_SHAPES[action])) return answer.result as Results[A];
    throw new BackupHostInternalError(`backup host answered ${action} with exit 0 but not a valid result`);
  }
  if (outcome.exitCode === EXIT_REFUSED) {
    const error = answer && !answer.ok ? answer.error : null;
    if (error && error.code !== 'internal') throw refusalError(error.code, error.reason, error.message);
    // No answer at all: the gate or sudo refused before the dispatcher ran (their stderr says why).
    // Anything else on stdout is garbled (an unknown reason too), so none of its words reach a customer.
    if (outcome.stdout.trim() === '')
      throw new BackupHostRefused('refused', 'unknown_action', `gate or sudo: ${oneLine(outcome.stderr) || 'no reason given'}`);
    throw new BackupHostInternalError(`backup host answered ${action} with exit 1 but not a valid refusal`);
  }
  if (outcome.exitCode === EXIT_INTERNAL && answer && !answer.ok) {
    throw new BackupHostInternalError(`backup host failed ${action} (${answer.error.reason}): ${answer.error.message}`);
  }
  const how = outcome.signal ? `signal ${outcome.signal}` : `exit ${outcome.exitCode ?? 'unknown'}`;
  throw new BackupHostInternalError(`backup host ended ${action} with ${how}: ${oneLine(outcome.stderr) || 'no message'}`);
}

function refusalError(code: Exclude<ErrorCode, 'internal'>, reason: RefusalReason, message: string): BackupHostRefused {
  if (code === 'quota' || code === 'busy') return new BackupHostLimited(code, reason, message);
  return new BackupHostRefused(code, reason, message);
}

/** One entry of an archive.statuses answer, read as archive.status's own answer would be. */
function statusOutcome(ref: ArchiveRef, entry: unknown): ArchiveStatusOutcome {
  const answer = isPlainObject(entry) && entry.archiveId === ref.archiveId ? answerFrom(entry.answer) : null;
  if (answer?.ok && matchesShape(answer.result as Record<string, unknown>, RESULT_SHAPES['archive.status'])) {
    return { ...ref, ok: true, status: answer.result as ArchiveStatusResult };
  }
  if (answer && !answer.ok) {
    const { error } = answer;
    const failure =
      error.code === 'internal'
        ? new BackupHostInternalError(`backup host failed archive.status (${error.reason}): ${error.message}`)
        : refusalError(error.code, error.reason, error.message);
    return { ...ref, ok: false, error: failure };
  }
  throw new BackupHostInternalError('backup host answered archive.statuses with an entry that is not a valid answer');
}

/** Splits refs into calls the dispatcher accepts: at most MAX_ARCHIVE_STATUSES each, under the default request cap. */
export function statusBatches(refs: readonly ArchiveRef[]): ArchiveRef[][] {
  const batches: ArchiveRef[][] = [];
  let batch: ArchiveRef[] = [];
  let bytes = 0;
  for (const ref of refs) {
    const size = JSON.stringify(ref).length + 1;
    // 64 bytes spare for the envelope `{"archives":[...]}`.
    if (batch.length === MAX_ARCHIVE_STATUSES || bytes + size > DEFAULT_MAX_REQUEST_BYTES - 64) {
      batches.push(batch);
      batch = [];
      bytes = 0;
    }
    batch.push({ customer: ref.customer, archiveId: ref.archiveId });
    bytes += size;
  }
  if (batch.length > 0) batches.push(batch);
  return batches;
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim().slice(0, 300);
}

export function createBackupHost(transport: Transport): BackupHost {
  async function call<A extends RemoteAction>(action: A, request: Requests[A]): Promise<Results[A]> {
    // Check on our side too, so a bad request is a clear error here and never leaves the portal.
    const valid = validateRequest(action, request);
    if (!valid.ok) throw new BackupHostRefused('refused', 'bad_request', `not sent: ${valid.problem}`);
    if (!isPlainObject(valid.value)) throw new BackupHostRefused('refused', 'bad_request', 'not sent: not an object');
    const outcome = await transport.run(action, JSON.stringify(valid.value));
    return interpretOutcome(action, outcome);
  }
  async function archiveStatuses(refs: readonly ArchiveRef[]): Promise<ArchiveStatusOutcome[]> {
    // Checked whole before splitting, so a repeat cannot hide in two batches.
    if (new Set(refs.map((r) => r.archiveId)).size !== refs.length)
      throw new BackupHostRefused('refused', 'bad_request', 'not sent: an archive id is listed twice');
    const outcomes: ArchiveStatusOutcome[] = [];
    for (const batch of statusBatches(refs)) {
      const { statuses } = await call('archive.statuses', { archives: batch });
      if (!Array.isArray(statuses) || statuses.length !== batch.length)
        throw new BackupHostInternalError(`backup host answered ${batch.length} archives with ${String(statuses.length)} statuses`);
      batch.forEach((ref, i) => outcomes.push(statusOutcome(ref, statuses[i])));
    }
    return outcomes;
  }
  return {
    describe: transport.describe,
    ping: () => call('ping', {}),
    listBackups: (r) => call('backups.list', r),
    createArchive: (r) => call('archive.create', r),
    archiveStatus: (r) => call('archive.status', r),
    archiveStatuses,
    listArchives: (r) => call('archive.list', r),
    cancelArchive: (r) => call('archive.cancel', r),
    armArchive: (r) => call('archive.arm', r),
    issueLink: (r) => call('link.issue', r),
    eventsSince: (r) => call('events.since', r),
  };
}

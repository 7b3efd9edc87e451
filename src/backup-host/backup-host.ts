// The portal's typed view of one backup host: one function per dispatcher action, over any transport.
import {
  EXIT_DONE,
  EXIT_INTERNAL,
  EXIT_REFUSED,
  isPlainObject,
  parseAnswer,
  validateRequest,
  type ArchiveArmRequest,
  type ArchiveCancelRequest,
  type ArchiveCreateRequest,
  type ArchiveListRequest,
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

export interface BackupHost {
  readonly describe: string;
  ping(): Promise<Results['ping']>;
  listBackups(request: BackupsListRequest): Promise<Results['backups.list']>;
  createArchive(request: ArchiveCreateRequest): Promise<Results['archive.create']>;
  archiveStatus(request: ArchiveStatusRequest): Promise<Results['archive.status']>;
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
    if (error && (error.code === 'quota' || error.code === 'busy')) throw new BackupHostLimited(error.code, error.reason, error.message);
    if (error && error.code !== 'internal') throw new BackupHostRefused(error.code, error.reason, error.message);
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
  return {
    describe: transport.describe,
    ping: () => call('ping', {}),
    listBackups: (r) => call('backups.list', r),
    createArchive: (r) => call('archive.create', r),
    archiveStatus: (r) => call('archive.status', r),
    listArchives: (r) => call('archive.list', r),
    cancelArchive: (r) => call('archive.cancel', r),
    armArchive: (r) => call('archive.arm', r),
    issueLink: (r) => call('link.issue', r),
    eventsSince: (r) => call('events.since', r),
  };
}

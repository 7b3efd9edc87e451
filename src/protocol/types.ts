// Request and result shapes of every dispatcher action, shared by the dispatcher and the portal.
import type { Action, ArchiveState, EventType } from './actions.js';
import type { Answer } from './envelope.js';

export type Empty = Record<string, never>;

export interface PingResult {
  version: string;
  time: string;
  roots: { backup: boolean; archive: boolean; link: boolean };
  freeBytes: number | null;
}

export interface BackupsListRequest {
  customer: string;
}
export interface SnapshotInfo {
  name: string;
  time: string;
  sizeBytes: number | null;
}
export interface BackupsListResult {
  snapshots: SnapshotInfo[];
}

export interface ArchiveCreateRequest {
  customer: string;
  snapshot: string;
}
export interface ArchiveCreateResult {
  archiveId: string;
  state: 'building';
}

export interface ArchiveRef {
  customer: string;
  archiveId: string;
}
export type ArchiveStatusRequest = ArchiveRef;
export interface ArchiveStatusResult {
  state: ArchiveState;
  bytesWritten: number;
  filesWritten: number;
  percent: number | null;
  sizeBytes: number | null;
  sha256: string | null;
  failureReason: string | null;
  createdAt: string;
  readyAt: string | null;
  expiresAt: string | null;
  downloadFileName: string;
}

/** Many archive.status calls in one: each entry names its customer, so each lookup stays scoped to that customer. */
export interface ArchiveStatusesRequest {
  archives: ArchiveRef[];
}
/** One asked archive, in the order asked, with exactly the answer archive.status gives it (not_found included). */
export interface ArchiveStatusesEntry {
  archiveId: string;
  answer: Answer<ArchiveStatusResult>;
}
export interface ArchiveStatusesResult {
  statuses: ArchiveStatusesEntry[];
}

/** A customer's archives still being built or ready: how the portal finds a build whose id it never stored. */
export interface ArchiveListRequest {
  customer: string;
}
export interface LiveArchive {
  archiveId: string;
  snapshot: string;
  state: 'building' | 'ready';
  createdAt: string;
}
export interface ArchiveListResult {
  archives: LiveArchive[];
}

export type ArchiveCancelRequest = ArchiveRef;
export interface ArchiveCancelResult {
  state: ArchiveState;
}

export interface ArchiveArmRequest extends ArchiveRef {
  tokenHash: string;
}
export interface ArchiveArmResult {
  armed: true;
}

export interface LinkIssueRequest extends ArchiveRef {
  token: string;
  clientIp: string;
}
export interface LinkIssueResult {
  url: string;
  /** Unix seconds on the backup host's clock; only NGINX there compares it, so the portal shows lifetimeSeconds. */
  expires: number;
  /** How long the link works from the moment it was made, whatever either host's clock says. */
  lifetimeSeconds: number;
  fileName: string;
}

export interface EventsSinceRequest {
  after: number;
  limit?: number;
}
export interface DispatcherEvent {
  seq: number;
  time: string;
  type: EventType;
  customer: string;
  archiveId: string;
  ip: string | null;
  bytes: number | null;
  detail: string | null;
  /** Download events only: how much of the archive its links have sent so far (absent from older dispatchers). */
  delivered?: DeliveredSoFar;
}
/** Bytes of an archive sent so far, each byte counted once however often it was sent, and in how many responses. */
export interface DeliveredSoFar {
  bytes: number;
  total: number;
  parts: number;
}
export interface EventsSinceResult {
  events: DispatcherEvent[];
  lastSeq: number;
}

/** Request type of each action (local actions take no request: stdin is not read). */
export interface Requests {
  ping: Empty;
  'backups.list': BackupsListRequest;
  'archive.create': ArchiveCreateRequest;
  'archive.status': ArchiveStatusRequest;
  'archive.statuses': ArchiveStatusesRequest;
  'archive.list': ArchiveListRequest;
  'archive.cancel': ArchiveCancelRequest;
  'archive.arm': ArchiveArmRequest;
  'link.issue': LinkIssueRequest;
  'events.since': EventsSinceRequest;
  watch: Empty;
  sweep: Empty;
  check: Empty;
}

export interface CheckFinding {
  ok: boolean;
  what: string;
  detail: string;
}

/** Result type of each action. */
export interface Results {
  ping: PingResult;
  'backups.list': BackupsListResult;
  'archive.create': ArchiveCreateResult;
  'archive.status': ArchiveStatusResult;
  'archive.statuses': ArchiveStatusesResult;
  'archive.list': ArchiveListResult;
  'archive.cancel': ArchiveCancelResult;
  'archive.arm': ArchiveArmResult;
  'link.issue': LinkIssueResult;
  'events.since': EventsSinceResult;
  watch: { stopped: true };
  sweep: {
    linksRemoved: number;
    archivesExpired: number;
    partialsRemoved: number;
    buildsFailed: number;
    /** Client addresses past ipRetentionDays removed: link records, event log lines, call log lines, download log lines and files. */
    linkIpsRemoved: number;
    eventsAnonymised: number;
    callLinesRemoved: number;
    downloadLinesBlanked: number;
    downloadLogsRemoved: number;
  };
  check: { findings: CheckFinding[] };
}

// Compile-time guarantee that every action has both a request and a result type.
type Covers<T extends Record<Action, unknown>> = T;
export type AllRequests = Covers<Requests>;
export type AllResults = Covers<Results>;

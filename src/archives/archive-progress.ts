// How far an archive is, for the page's live progress script, and how its last interrupted download went.
import { formatBytes } from '../format.js';
import type { Db } from '../db/database.js';
import { describeState } from './archive-format.js';
import type { ArchiveRequest } from './archive-request.repository.js';
import { DEFAULT_HOST } from './event.repository.js';

/** How often the archive's page refreshes itself without JavaScript, and the script polls with it. */
export const PROGRESS_REFRESH_SECONDS = 5;

/** The JSON the script reads: the same words and figures as the page, so both read alike. */
export interface ArchiveProgress {
  state: ArchiveRequest['state'];
  stateText: string;
  /** Still being made: the script keeps polling. Otherwise it reloads once for the finished page. */
  working: boolean;
  percent: number | null;
  written: string;
}

export function progressOf(request: ArchiveRequest): ArchiveProgress {
  return {
    state: request.state,
    stateText: describeState(request.state),
    working: request.state === 'requested' || request.state === 'building',
    percent: request.percent,
    written: `${formatBytes(request.bytesWritten)} in ${request.filesWritten} file${request.filesWritten === 1 ? '' : 's'}`,
  };
}

export interface InterruptedDownload {
  at: Date;
  ip: string | null;
  bytes: number | null;
}

/** The archive's newest download attempt if it stopped before the end (none after it completed). */
export async function lastInterruptedDownload(db: Db, request: ArchiveRequest): Promise<InterruptedDownload | null> {
  if (request.archiveId === null) return null;
  const row = await db
    .selectFrom('backup_host_events')
    .select(['type', 'at', 'ip', 'bytes'])
    .where('host', '=', DEFAULT_HOST)
    .where('archive_id', '=', request.archiveId)
    .where('type', 'in', ['download.interrupted', 'download.completed'])
    .orderBy('seq', 'desc')
    .limit(1)
    .executeTakeFirst();
  if (row === undefined || row.type !== 'download.interrupted') return null;
  return { at: row.at, ip: row.ip, bytes: row.bytes === null ? null : Number(row.bytes) };
}

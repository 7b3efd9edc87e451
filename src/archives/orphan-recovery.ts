// Finds a build the backup host started for a request whose archive id the portal never stored (it died in between), and adopts it.
import type { FastifyBaseLogger } from 'fastify';
import { BackupHostError, BackupHostRefused, type BackupHost } from '../backup-host/index.js';
import type { Db } from '../db/database.js';
import { isArchiveId, isSnapshotName, type LiveArchive } from '../protocol/index.js';
import { knownArchiveIds, markBuilding, markFinished, unconfirmedRequests, type ArchiveRequest } from './archive-request.repository.js';

/**
 * A request still without the backup host's archive id after this long was cut off between the
 * insert and archive.create's answer (a crash, a restart): its build, if the host started one, is an orphan.
 */
export const UNCONFIRMED_REQUEST_TIMEOUT_MS = 2 * 60_000;

type Unconfirmed = Pick<ArchiveRequest, 'id' | 'customer' | 'snapshot'>;

/**
 * The customer's archives (building or ready) that no request of ours holds and that a request of
 * ours without an archive id asked for (same snapshot): a build nobody here asked for is never
 * touched. None while another such request is within the cut-off: the build may be its own, on its way.
 */
async function findOrphans(db: Db, host: BackupHost, request: Unconfirmed, now: Date): Promise<LiveArchive[]> {
  const { archives } = await host.listArchives({ customer: request.customer });
  // The answer crosses a trust boundary: entries of the wrong shape are ignored, never stored.
  const live = (Array.isArray(archives) ? archives : []).filter(
    (a: Partial<LiveArchive>) => isArchiveId(a.archiveId) && isSnapshotName(a.snapshot) && (a.state === 'building' || a.state === 'ready'),
  );
  if (live.length === 0) return [];
  const unconfirmed = await unconfirmedRequests(db, request.customer);
  const cutOff = now.getTime() - UNCONFIRMED_REQUEST_TIMEOUT_MS;
  if (unconfirmed.some((r) => r.id !== request.id && r.requestedAt.getTime() > cutOff)) return [];
  const askedFor = new Set([request.snapshot, ...unconfirmed.map((r) => r.snapshot)]);
  const known = await knownArchiveIds(
    db,
    live.map((a) => a.archiveId),
  );
  return live.filter((a) => askedFor.has(a.snapshot) && !known.has(a.archiveId));
}

/**
 * The poller's turn for a request never confirmed in time: adopts the orphan of its snapshot (the
 * poller then follows it, and the customer gets the ready email as usual), else fails the request
 * as before. Adopting rather than cancelling: the build is what the customer asked for, and a new
 * one would cost the host a second tar run and the customer one of their builds for the day.
 */
export async function adoptOrFail(
  db: Db,
  host: BackupHost,
  request: ArchiveRequest,
  now: Date,
  log: FastifyBaseLogger,
): Promise<'adopted' | 'failed'> {
  let orphan: LiveArchive | undefined;
  try {
    orphan = (await findOrphans(db, host, request, now)).find((a) => a.snapshot === request.snapshot);
  } catch (error) {
    // An unreachable host, or one whose dispatcher predates archive.list: the request ends as it always did.
    if (!(error instanceof BackupHostError)) throw error;
    log.warn({ reason: error.message }, 'could not look for an orphaned build');
  }
  if (orphan !== undefined && (await markBuilding(db, request.id, orphan.archiveId, now))) {
    log.warn({ archiveId: orphan.archiveId, hostState: orphan.state }, 'archive request never confirmed; adopted its orphaned build');
    return 'adopted';
  }
  await markFinished(db, request.id, 'failed', 'The request was interrupted before the backup host confirmed it. Please ask again.', now);
  log.warn('archive request never confirmed by the backup host; no build to adopt, marked failed');
  return 'failed';
}

/**
 * archive.create for a new request. When the host answers that a build is already running for the
 * customer and that build is an orphan, the customer is not told "already being built" forever: an
 * orphan of the same snapshot is adopted, one of another snapshot is cancelled (the customer's newest
 * choice wins; their earlier request was already reported as failed) and the create is tried once more.
 */
export async function createOrAdopt(db: Db, host: BackupHost, request: Unconfirmed, now: Date, log: FastifyBaseLogger): Promise<string> {
  const asked = { customer: request.customer, snapshot: request.snapshot };
  try {
    return (await host.createArchive(asked)).archiveId;
  } catch (error) {
    if (!(error instanceof BackupHostRefused && error.reason === 'build_running')) throw error;
    let orphans: LiveArchive[] = [];
    try {
      orphans = (await findOrphans(db, host, request, now)).filter((a) => a.state === 'building');
    } catch (lookup) {
      if (!(lookup instanceof BackupHostError)) throw lookup;
    }
    // Not an orphan (or it cannot be told): the host's refusal stands.
    if (orphans.length === 0) throw error;
    const same = orphans.find((a) => a.snapshot === request.snapshot);
    if (same !== undefined) {
      log.warn({ archiveId: same.archiveId }, 'a new request met an orphaned build of the same snapshot; adopted it');
      return same.archiveId;
    }
    for (const orphan of orphans) await host.cancelArchive({ customer: request.customer, archiveId: orphan.archiveId });
    log.warn({ archiveIds: orphans.map((a) => a.archiveId) }, 'a new request met an orphaned build of another snapshot; cancelled it');
    return (await host.createArchive(asked)).archiveId;
  }
}

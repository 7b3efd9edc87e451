// archive.create, archive.status(es), archive.list and archive.cancel: the archive's life up to "ready".
import { randomBytes } from 'node:crypto';
import { rmSync, statfsSync } from 'node:fs';
import {
  downloadFileName,
  errorAnswer,
  okAnswer,
  type ArchiveStatusesRequest,
  type ArchiveStatusesResult,
  type ArchiveCancelRequest,
  type ArchiveCancelResult,
  type ArchiveCreateRequest,
  type ArchiveCreateResult,
  type ArchiveListRequest,
  type ArchiveListResult,
  type LiveArchive,
  type ArchiveStatusRequest,
  type ArchiveStatusResult,
} from '../../protocol/index.js';
import { listRecordIds, mutateRecord, readProgress, readRecord, reconcile, writeRecord, type ArchiveRecord } from './archive-store.js';
import { spawnBuilder } from './builder.js';
import { nowIso, nowMs } from './clock.js';
import type { DispatcherConfig } from './config.js';
import { estimateTarBytes } from './estimate.js';
import { appendEvent } from './events.js';
import { DispatcherFailure, fail, notFound } from './failure.js';
import { groupId } from './group.js';
import { admit } from './limits.js';
import { paths } from './layout.js';
import { readLockHolder, tryLock, unlock } from './lock.js';
import { isAlive, selfId } from './process-id.js';
import { snapshotDir } from './snapshot-path.js';
import { pretendedFreeBytes } from './test-seams.js';

/** Free bytes for unprivileged writers; the test bundle may pretend a full disk. */
export function freeBytes(dir: string): number {
  const pretended = pretendedFreeBytes();
  if (pretended !== null) return pretended;
  const st = statfsSync(dir);
  return st.bavail * st.bsize;
}

/** The record if it exists and belongs to this customer; another customer's id looks exactly like a missing one. */
export function ownedRecord(cfg: DispatcherConfig, customer: string, archiveId: string): ArchiveRecord {
  const rec = readRecord(cfg, archiveId);
  if (!rec || rec.customer !== customer)
    notFound(`archive ${archiveId} not found for ${customer}${rec ? ` (belongs to ${rec.customer})` : ''}`);
  return reconcile(cfg, rec);
}

export async function createArchive(cfg: DispatcherConfig, req: ArchiveCreateRequest): Promise<ArchiveCreateResult> {
  const dir = snapshotDir(cfg, req.customer, req.snapshot);
  // Checked now rather than when the finished archive is handed to nginx: a build of hours would
  // otherwise end in this failure.
  if (groupId(cfg.nginxGroup) === null) {
    fail('misconfigured', `nginxGroup ${cfg.nginxGroup} does not exist`);
  }
  const id = randomBytes(16).toString('hex');
  const nonce = randomBytes(32).toString('hex');
  await withMutexAsync(paths.customerMutex(cfg, req.customer), async () => {
    const holder = readLockHolder(paths.buildLock(cfg, req.customer));
    if (holder) fail('build_running', `build ${holder.archiveId ?? '?'} still running (pid ${holder.pid})`);
    // Ready archives hold disk until downloaded or expired; a full archive disk stops every customer.
    const ready = readyArchiveCount(cfg, req.customer);
    if (ready >= cfg.maxReadyArchivesPerCustomer) {
      fail('quota_ready', `limit: ${ready} ready archives for ${req.customer}, at most ${cfg.maxReadyArchivesPerCustomer}`);
    }
    admit(cfg, 'archive.create', req.customer);
    // Measured before tar starts writing, so the archive's own first bytes do not count against it.
    const free = freeBytes(cfg.archiveRoot);
    const rec: ArchiveRecord = {
      id,
      customer: req.customer,
      snapshot: req.snapshot,
      state: 'building',
      createdAt: nowIso(),
      readyAt: null,
      expiresAt: null,
      estimateBytes: null,
      sizeBytes: null,
      sha256: null,
      filesWritten: 0,
      failureReason: null,
      downloadFileName: downloadFileName(req.customer, req.snapshot, id),
      builder: null,
      builderNonce: nonce,
    };
    writeRecord(cfg, rec);
    // tar starts now and the size estimate walks the tree alongside it (on trees of many small
    // files the walk costs a fifth of the build); the builder publishes only once admitted below.
    const build = await spawnBuilder(id, nonce, (builder) => {
      // The build lock names the builder, so it goes stale by itself if the builder dies.
      const taken = tryLock(paths.buildLock(cfg, req.customer), { ...builder, archiveId: id });
      if (!taken.taken) throw new Error('build lock taken while holding the customer mutex');
      writeRecord(cfg, { ...rec, builder });
    });
    const estimate = await estimateTarBytes(cfg.findPath, dir, cfg.estimateBudgetMs);
    if (estimate !== null && free < estimate) {
      // Refused as if it never started: no record, no partial file, no event, the lock free again.
      await build.stop();
      unlock(paths.buildLock(cfg, req.customer), build.builder);
      for (const f of [paths.partialFile(cfg, id), paths.progress(cfg, id), paths.record(cfg, id)]) rmSync(f, { force: true });
      fail('no_space', `need ${estimate} bytes, ${free} free in archiveRoot`);
    }
    mutateRecord(cfg, id, (cur) => ({ ...cur, estimateBytes: estimate }));
    appendEvent(cfg, { type: 'archive.requested', customer: req.customer, archiveId: id, detail: `snapshot ${req.snapshot}` });
    await build.admit();
  });
  return { archiveId: id, state: 'building' };
}

function readyArchiveCount(cfg: DispatcherConfig, customer: string): number {
  let n = 0;
  for (const id of listRecordIds(cfg)) {
    const rec = readRecord(cfg, id);
    if (rec?.customer === customer && rec.state === 'ready' && (rec.expiresAt === null || Date.parse(rec.expiresAt) > nowMs())) n++;
  }
  return n;
}

// withMutex is synchronous; create needs to await the builder hand-off while holding the mutex.
async function withMutexAsync<T>(path: string, fn: () => Promise<T>): Promise<T> {
  const me = selfId();
  for (const deadline = Date.now() + 10_000; ;) {
    const r = tryLock(path, me);
    if (r.taken) break;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${path} held by pid ${r.holder.pid}`);
    await new Promise((res) => setTimeout(res, 5));
  }
  try {
    return await fn();
  } finally {
    unlock(path, me);
  }
}

export function archiveStatus(cfg: DispatcherConfig, req: ArchiveStatusRequest): ArchiveStatusResult {
  const rec = ownedRecord(cfg, req.customer, req.archiveId);
  return statusOf(cfg, rec);
}

/**
 * archive.status for each listed archive, in the order asked, each scoped to its own customer: one
 * call per poll instead of one per build. A refusal (not_found) or an error answers that entry
 * only, so one broken record never hides the others; the details go to the call log.
 */
export function archiveStatuses(cfg: DispatcherConfig, req: ArchiveStatusesRequest, note: (detail: string) => void): ArchiveStatusesResult {
  const statuses = req.archives.map((ref) => {
    try {
      return { archiveId: ref.archiveId, answer: okAnswer(archiveStatus(cfg, ref)) };
    } catch (e) {
      const failure = e instanceof DispatcherFailure ? e : new DispatcherFailure('internal', null, String(e));
      note(`${failure.reason}: ${failure.logDetail}`);
      return { archiveId: ref.archiveId, answer: errorAnswer(failure.reason, failure.operatorMessage) };
    }
  });
  return { statuses };
}

export function statusOf(cfg: DispatcherConfig, rec: ArchiveRecord): ArchiveStatusResult {
  const building = rec.state === 'building';
  const progress = building ? readProgress(cfg, rec.id) : { bytesWritten: rec.sizeBytes ?? 0, filesWritten: rec.filesWritten };
  let percent: number | null = null;
  if (building && rec.estimateBytes) percent = Math.min(99, Math.floor((progress.bytesWritten * 100) / rec.estimateBytes));
  else if (rec.state === 'ready' || rec.state === 'downloaded' || rec.state === 'expired') percent = 100;
  return {
    state: rec.state,
    bytesWritten: progress.bytesWritten,
    filesWritten: progress.filesWritten,
    percent,
    sizeBytes: rec.sizeBytes,
    sha256: rec.sha256,
    failureReason: rec.failureReason,
    createdAt: rec.createdAt,
    readyAt: rec.readyAt,
    expiresAt: rec.expiresAt,
    downloadFileName: rec.downloadFileName,
  };
}

/** Answers at most this many archives: the ready quota bounds them anyway, and the answer stays small. */
const MAX_LISTED = 20;

/**
 * The customer's archives still building or ready, newest first: the portal adopts a build it
 * started but never recorded (it died before storing the id). Dead builds are reconciled first.
 */
export function listArchives(cfg: DispatcherConfig, req: ArchiveListRequest): ArchiveListResult {
  const live: LiveArchive[] = [];
  for (const id of listRecordIds(cfg)) {
    const found = readRecord(cfg, id);
    if (found?.customer !== req.customer) continue;
    const rec = reconcile(cfg, found);
    const unexpired = rec.expiresAt === null || Date.parse(rec.expiresAt) > nowMs();
    if (rec.state === 'building' || (rec.state === 'ready' && unexpired)) {
      live.push({ archiveId: rec.id, snapshot: rec.snapshot, state: rec.state, createdAt: rec.createdAt });
    }
  }
  live.sort((a, b) => (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : 0));
  return { archives: live.slice(0, MAX_LISTED) };
}

export function cancelArchive(cfg: DispatcherConfig, req: ArchiveCancelRequest): ArchiveCancelResult {
  ownedRecord(cfg, req.customer, req.archiveId);
  let cancelled = false;
  const rec = mutateRecord(cfg, req.archiveId, (cur) => {
    if (cur.state !== 'building' && cur.state !== 'ready') return null; // nothing left to stop
    if (cur.state === 'building' && cur.builder && isAlive(cur.builder)) {
      try {
        // The builder leads its own process group, so this stops tar too.
        process.kill(-cur.builder.pid, 'SIGKILL');
      } catch {
        // already gone
      }
      unlock(paths.buildLock(cfg, cur.customer), cur.builder);
    }
    cancelled = true;
    return { ...cur, state: 'cancelled', builder: null, builderNonce: null };
  });
  if (cancelled) {
    rmSync(paths.partialFile(cfg, req.archiveId), { force: true });
    rmSync(paths.archiveFile(cfg, req.archiveId), { force: true });
    rmSync(paths.tokenHash(cfg, req.archiveId), { force: true });
    appendEvent(cfg, { type: 'archive.cancelled', customer: req.customer, archiveId: req.archiveId });
  }
  return { state: rec?.state ?? 'cancelled' };
}

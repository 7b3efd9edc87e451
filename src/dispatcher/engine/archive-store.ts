// Archive records in stateDir: read, write under a per-archive mutex, and reconcile with reality.
import { readdirSync, rmSync } from 'node:fs';
import type { ArchiveState } from '../../protocol/index.js';
import { isArchiveId } from '../../protocol/index.js';
import type { DispatcherConfig } from './config.js';
import { readJsonOrNull, writeJsonAtomic } from './fsutil.js';
import { paths } from './layout.js';
import { withMutex } from './lock.js';
import { isAlive, type ProcessId } from './process-id.js';
import { nowMs } from './clock.js';
import { appendEvent } from './events.js';
import type { ByteRange } from './byte-ranges.js';

export interface ArchiveRecord {
  id: string;
  customer: string;
  snapshot: string;
  state: ArchiveState;
  createdAt: string;
  readyAt: string | null;
  expiresAt: string | null;
  /** Estimated tar stream size from summing file sizes at create time; null when that was too slow. */
  estimateBytes: number | null;
  sizeBytes: number | null;
  sha256: string | null;
  filesWritten: number;
  failureReason: string | null;
  downloadFileName: string;
  builder: ProcessId | null;
  /** Random value handed to the builder over its stdin, proving it was started by archive.create. */
  builderNonce: string | null;
  /** Bytes of the archive sent so far, over every link (watch; absent until the first download). */
  delivered?: ByteRange[];
  /** Responses that sent part of it. */
  deliveredParts?: number;
  /** The download log line ("<inode>:<end>") counted last: a line replayed after a crash is not a new part. */
  deliveredFrom?: string;
}

export interface Progress {
  bytesWritten: number;
  filesWritten: number;
}

export function readRecord(cfg: DispatcherConfig, id: string): ArchiveRecord | null {
  return readJsonOrNull<ArchiveRecord>(paths.record(cfg, id));
}

export function writeRecord(cfg: DispatcherConfig, rec: ArchiveRecord): void {
  writeJsonAtomic(paths.record(cfg, rec.id), rec);
}

/** Read-modify-write under the archive's mutex; fn returns the new record or null to leave it. */
export function mutateRecord(cfg: DispatcherConfig, id: string, fn: (rec: ArchiveRecord) => ArchiveRecord | null): ArchiveRecord | null {
  return withMutex(paths.archiveMutex(cfg, id), () => {
    const rec = readRecord(cfg, id);
    if (!rec) return null;
    const next = fn(rec);
    if (next) writeRecord(cfg, next);
    return next ?? rec;
  });
}

export function readProgress(cfg: DispatcherConfig, id: string): Progress {
  return readJsonOrNull<Progress>(paths.progress(cfg, id)) ?? { bytesWritten: 0, filesWritten: 0 };
}

export function listRecordIds(cfg: DispatcherConfig): string[] {
  let names: string[];
  try {
    names = readdirSync(`${cfg.stateDir}/archives`);
  } catch {
    return [];
  }
  return names
    .filter((n) => n.endsWith('.json') && !n.endsWith('.progress.json'))
    .map((n) => n.slice(0, -5))
    .filter(isArchiveId);
}

export const BUILDER_GONE = 'The archive builder stopped unexpectedly.';

/**
 * A build whose builder process is gone (killed, host rebooted) can never finish: mark it failed,
 * remove its partial file and record the event. Returns the current record.
 */
export function reconcile(cfg: DispatcherConfig, rec: ArchiveRecord): ArchiveRecord {
  if (!builderGone(rec)) return rec;
  let changed = false;
  const next = mutateRecord(cfg, rec.id, (cur) => {
    if (!builderGone(cur)) return null;
    changed = true;
    return { ...cur, state: 'failed', failureReason: BUILDER_GONE, builder: null, builderNonce: null };
  });
  if (changed) {
    rmSync(paths.partialFile(cfg, rec.id), { force: true });
    appendEvent(cfg, { type: 'archive.failed', customer: rec.customer, archiveId: rec.id, detail: BUILDER_GONE });
  }
  return next ?? rec;
}

// A record without a builder is one whose archive.create died between writing it and spawning.
function builderGone(rec: ArchiveRecord): boolean {
  if (rec.state !== 'building') return false;
  if (rec.builder === null) return nowMs() - Date.parse(rec.createdAt) > 60_000;
  return !isAlive(rec.builder);
}

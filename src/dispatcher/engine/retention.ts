// Retention of client addresses: sweep anonymises or drops log lines older than ipRetentionDays, streaming, crash-safe.
import { closeSync, existsSync, fstatSync, fsyncSync, openSync, readdirSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { nowMs } from './clock.js';
import type { DispatcherConfig } from './config.js';
import { fsyncDir, readJsonOrNull, writeJsonAtomic } from './fsutil.js';
import { paths } from './layout.js';
import { withMutex } from './lock.js';
import { copyRange, forEachLine } from './log-lines.js';

/**
 * What to do with one line: `new` (younger than the cutoff: this line and all after it stay as they
 * are), `keep` (old, nothing left to remove), a replacement line, or null to drop it.
 * Lines are appended in time order, so the first young line ends the work; a wall-clock step back
 * only delays the lines written before it until the cutoff passes them too.
 */
type Verdict = 'new' | 'keep' | string | null;

export interface RetentionCounts {
  eventsAnonymised: number;
  callLinesRemoved: number;
  downloadLinesBlanked: number;
  downloadLogsRemoved: number;
  linkIpsRemoved: number;
}

/** Where each log's old, already cleaned part ends, so a sweep every minute does not re-read years of it. */
type Hints = Record<string, { ino: number; offset: number } | undefined>;

function timeOf(line: Buffer): { value: Record<string, unknown>; ms: number } | null {
  try {
    const value = JSON.parse(line.toString('utf8')) as unknown;
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return null;
    const o = value as Record<string, unknown>;
    const ms = typeof o.time === 'string' ? Date.parse(o.time) : NaN;
    return Number.isNaN(ms) ? null : { value: o, ms };
  } catch {
    return null;
  }
}

/** Events keep their seq (the portal syncs by it, gap-free) and their facts; the address and request detail go. */
function eventVerdict(cutoff: number) {
  return (line: Buffer): Verdict => {
    const parsed = timeOf(line);
    // A torn line from a crash has no seq, and events.since already skips it: nothing to keep.
    if (!parsed || !Number.isSafeInteger(parsed.value.seq)) return null;
    if (parsed.ms >= cutoff) return 'new';
    if (parsed.value.ip === null && parsed.value.detail === null) return 'keep';
    return JSON.stringify({ ...parsed.value, ip: null, detail: null });
  };
}

/**
 * Old call-log lines are dropped whole: a line is who asked what from where, and without the caller
 * and the request it would say only that a call happened, which the event log already tells.
 * Dropping also keeps the file from growing for ever.
 */
function callVerdict(cutoff: number) {
  return (line: Buffer): Verdict => {
    const parsed = timeOf(line);
    return parsed && parsed.ms >= cutoff ? 'new' : null;
  };
}

/**
 * Rewrites an appended log through a temp file: the old part is transformed without the lock (it
 * may be large), then, under the lock the appenders take, whatever they added meanwhile is copied
 * as is, fsync'd and renamed over the log. Killed at any point, the log is the old or the new file.
 */
function rewriteLog(path: string, mutex: string, verdict: (line: Buffer) => Verdict, hints: Hints, key: string): number {
  if (!existsSync(path)) return 0;
  const fd = openSync(path, 'r');
  try {
    const { ino, size, mode } = fstatSync(fd);
    const hint = hints[key];
    const from = hint && hint.ino === ino && hint.offset <= size ? hint.offset : 0;
    // A read-only look first: most sweeps find nothing new to clean and write nothing.
    let firstChange = -1;
    let stop = forEachLine(fd, from, size, (line, start) => {
      const v = verdict(line);
      if (v === 'new' || v === 'keep') return v !== 'new';
      firstChange = start;
      return false;
    });
    if (firstChange === -1) {
      hints[key] = { ino, offset: stop };
      return 0;
    }
    const tmp = tempName(path);
    const out = openSync(tmp, 'w', mode & 0o777);
    let changed = 0;
    let written = firstChange;
    try {
      copyRange(fd, out, 0, firstChange);
      stop = forEachLine(fd, firstChange, size, (line, start, end) => {
        const v = verdict(line);
        if (v === 'new') return false;
        if (v === 'keep') {
          copyRange(fd, out, start, end + 1);
          written += end + 1 - start;
          return true;
        }
        if (v !== null) written += writeSync(out, `${v}\n`);
        changed++;
        return true;
      });
      const newHint = written;
      copyRange(fd, out, stop, size);
      const renamed = withMutex(mutex, () => {
        // Someone else replaced the log since we opened it: leave it, the next sweep starts again.
        if (statSync(path).ino !== ino) return false;
        copyRange(fd, out, size, fstatSync(fd).size);
        fsyncSync(out);
        renameSync(tmp, path);
        fsyncDir(dirname(path));
        return true;
      });
      if (!renamed) return 0;
      hints[key] = { ino: statSync(path).ino, offset: newHint };
      return changed;
    } finally {
      closeSync(out);
      rmSync(tmp, { force: true });
    }
  } finally {
    closeSync(fd);
  }
}

function tempName(path: string): string {
  return `${path}.sweep-tmp`;
}

/**
 * nginx's download log is blanked in place, each old line overwritten by as many spaces, instead of
 * renamed: nginx keeps appending to the file it opened, and watch follows it by inode and offset, so
 * both must stay. A torn overwrite leaves a line that is not JSON, which watch skips, and only lines
 * watch has already read are touched.
 */
function blankOldLines(path: string, cutoff: number, readUpTo: (ino: number) => number, hints: Hints, key: string): number {
  let fd: number;
  try {
    fd = openSync(path, 'r+');
  } catch {
    return 0;
  }
  let blanked = 0;
  try {
    const { ino, size } = fstatSync(fd);
    const hint = hints[key];
    const limit = Math.min(size, readUpTo(ino));
    const from = hint && hint.ino === ino && hint.offset <= limit ? hint.offset : 0;
    const stop = forEachLine(fd, from, limit, (line, start, end) => {
      if (line.every((b) => b === 0x20)) return true;
      const parsed = timeOf(line);
      if (parsed && parsed.ms >= cutoff) return false;
      writeSync(fd, Buffer.alloc(end - start, 0x20), 0, end - start, start);
      blanked++;
      return true;
    });
    if (blanked > 0) fsyncSync(fd);
    hints[key] = { ino, offset: stop };
  } finally {
    closeSync(fd);
  }
  return blanked;
}

/** The download log and its rotations: the live file and `.1` are blanked, older rotations past the period removed. */
function cleanDownloadLogs(cfg: DispatcherConfig, cutoff: number, hints: Hints): { blanked: number; removed: number } {
  const watched = readJsonOrNull<{ ino: number; offset: number }>(paths.watchState(cfg));
  const current = inodeOf(cfg.downloadLog);
  // Only lines watch has read: its saved offset in the file it follows; a live file it has not reached, nothing.
  const readUpTo = (ino: number) => (watched?.ino === ino ? watched.offset : ino === current ? 0 : Infinity);
  const blanked =
    blankOldLines(cfg.downloadLog, cutoff, readUpTo, hints, 'download') +
    blankOldLines(`${cfg.downloadLog}.1`, cutoff, readUpTo, hints, 'download.1');
  let removed = 0;
  // Older rotations (logrotate's `.2`, `.3.gz`, ...) are no longer read; a whole file older than the period goes.
  const dir = dirname(cfg.downloadLog);
  const rotated = new RegExp(`^${escapeRegExp(basename(cfg.downloadLog))}\\.([2-9]|[1-9][0-9]+)(\\.gz)?$`);
  for (const name of safeList(dir)) {
    if (!rotated.test(name)) continue;
    const full = join(dir, name);
    try {
      if (statSync(full).mtimeMs < cutoff) {
        rmSync(full, { force: true });
        removed++;
      }
    } catch {
      // gone meanwhile
    }
  }
  return { blanked, removed };
}

/** Removes addresses older than `ipRetentionDays` from the event log, the call log and the download logs. */
export function applyLogRetention(cfg: DispatcherConfig): Omit<RetentionCounts, 'linkIpsRemoved'> {
  const cutoff = nowMs() - cfg.ipRetentionDays * 86400_000;
  const hints = readJsonOrNull<Hints>(paths.retentionHints(cfg)) ?? {};
  // Left by a sweep killed midway; the log it was rewriting is untouched.
  for (const log of [paths.eventsLog(cfg), paths.callLog(cfg)]) rmSync(tempName(log), { force: true });
  const eventsAnonymised = rewriteLog(paths.eventsLog(cfg), paths.eventsMutex(cfg), eventVerdict(cutoff), hints, 'events');
  const callLinesRemoved = rewriteLog(paths.callLog(cfg), paths.callLogMutex(cfg), callVerdict(cutoff), hints, 'calls');
  const downloads = cleanDownloadLogs(cfg, cutoff, hints);
  writeJsonAtomic(paths.retentionHints(cfg), hints);
  return { eventsAnonymised, callLinesRemoved, downloadLinesBlanked: downloads.blanked, downloadLogsRemoved: downloads.removed };
}

function inodeOf(path: string): number | null {
  try {
    return statSync(path).ino;
  } catch {
    return null;
  }
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function safeList(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

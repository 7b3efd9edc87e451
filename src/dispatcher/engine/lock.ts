// File locks that survive crashes: the holder's pid and start time are in the file, so a lock whose holder is gone is stale.
import { closeSync, openSync, readFileSync, unlinkSync, writeSync, fsyncSync } from 'node:fs';
import { isErrno } from './fsutil.js';
import { isAlive, selfId, type ProcessId } from './process-id.js';

export interface LockContent extends ProcessId {
  archiveId?: string;
}

function readLock(path: string): LockContent | null {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as LockContent;
  } catch {
    return null;
  }
}

/**
 * Takes the lock for `holder` unless a live process holds it. Returns the live holder on refusal.
 * A lock file that is unreadable or names a dead process is removed and taken.
 */
export function tryLock(path: string, holder: LockContent): { taken: true } | { taken: false; holder: LockContent } {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(path, 'wx', 0o600);
      try {
        writeSync(fd, JSON.stringify(holder));
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      return { taken: true };
    } catch (e) {
      if (!isErrno(e, 'EEXIST')) throw e;
    }
    const current = readLock(path);
    if (current && isAlive(current)) return { taken: false, holder: current };
    // A half-written lock from a process that is still starting looks unreadable; give it a moment.
    if (current === null && attempt === 0) {
      sleepMs(20);
      continue;
    }
    removeIfSame(path, current);
  }
  throw new Error(`could not take lock ${path}`);
}

function removeIfSame(path: string, seen: LockContent | null): void {
  const now = readLock(path);
  if (JSON.stringify(now) !== JSON.stringify(seen)) return;
  try {
    unlinkSync(path);
  } catch (e) {
    if (!isErrno(e, 'ENOENT')) throw e;
  }
}

export function readLockHolder(path: string): LockContent | null {
  const current = readLock(path);
  return current && isAlive(current) ? current : null;
}

/** Removes a lock only if it names the given holder (so nobody removes a lock they do not hold). */
export function unlock(path: string, holder: ProcessId): void {
  const current = readLock(path);
  if (current && current.pid === holder.pid && current.startTime === holder.startTime) {
    try {
      unlinkSync(path);
    } catch (e) {
      if (!isErrno(e, 'ENOENT')) throw e;
    }
  }
}

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Runs fn while holding a short mutex; waits (up to 10 s) for a live holder to finish. */
export function withMutex<T>(path: string, fn: () => T): T {
  const me = selfId();
  const deadline = Date.now() + 10_000;
  for (;;) {
    const r = tryLock(path, me);
    if (r.taken) break;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${path} held by pid ${r.holder.pid}`);
    sleepMs(5);
  }
  try {
    return fn();
  } finally {
    unlock(path, me);
  }
}

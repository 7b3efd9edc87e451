// The detached archive builder: runs tar idle-priority, streams it to a partial file while counting and hashing.
import { spawn } from 'node:child_process';
import { createHash, timingSafeEqual } from 'node:crypto';
import { chmodSync, chownSync, closeSync, fdatasync, fsyncSync, openSync, readSync, renameSync, rmSync } from 'node:fs';
import { setPriority } from 'node:os';
import { fileURLToPath } from 'node:url';
import { mutateRecord, readRecord, type ArchiveRecord } from './archive-store.js';
import { nowMs } from './clock.js';
import type { DispatcherConfig } from './config.js';
import { appendEvent } from './events.js';
import { fsyncDir, isErrno, writeJsonAtomic } from './fsutil.js';
import { groupId, runningAsRoot } from './group.js';
import { paths } from './layout.js';
import { unlock } from './lock.js';
import { isAlive, processStartTime, selfId, type ProcessId } from './process-id.js';
import { snapshotDir } from './snapshot-path.js';
import { TarMemberCounter } from './tar-counter.js';
import { SEAM_ENV } from './test-seams.js';

/** The hidden argv word that starts builder mode; not an action, so the gate and sudoers never pass it. */
export const BUILDER_WORD = '__build';

/**
 * What archive.create holds while the builder runs: the builder starts tar at once, but publishes
 * the archive only after archive.create has finished checking that the snapshot fits (`admit`).
 * If the check refuses (`stop`), or archive.create dies first, nothing is ever published.
 */
export interface BuilderHandle {
  readonly builder: ProcessId;
  admit(): Promise<void>;
  stop(): Promise<void>;
}

const ADMIT = 'admit';

/** Starts the builder as its own session (so cancel can signal tar with it) and hands it the nonce. */
export async function spawnBuilder(id: string, nonce: string, beforeNonce: (builder: ProcessId) => void): Promise<BuilderHandle> {
  const env: Record<string, string> = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' };
  for (const k of ['ARCHWAY_DISPATCHER_CONFIG', ...SEAM_ENV]) {
    const v = process.env[k];
    if (v !== undefined) env[k] = v;
  }
  const script = process.argv[1] ?? fileURLToPath(import.meta.url);
  // stdout/stderr are not inherited: sshd would otherwise keep the session open until tar ends.
  const child = spawn(process.execPath, [script, BUILDER_WORD, id], { detached: true, stdio: ['pipe', 'ignore', 'ignore'], env, cwd: '/' });
  const pid = child.pid;
  if (pid === undefined) throw new Error('builder did not start');
  const builder = { pid, startTime: processStartTime(pid) ?? '' };
  beforeNonce(builder);
  const stdin = child.stdin!;
  // A builder that died at once is reconciled as failed later; its closed pipe is not our error.
  stdin.on('error', () => {});
  await new Promise<void>((resolve) => stdin.write(`${nonce}\n`, () => resolve()));
  child.unref();
  return {
    builder,
    admit: () => new Promise<void>((resolve) => stdin.end(`${ADMIT}\n`, () => resolve())),
    async stop() {
      try {
        // The builder leads its own process group: this ends tar too.
        process.kill(-pid, 'SIGKILL');
      } catch {
        // already gone
      }
      stdin.destroy();
      for (const deadline = Date.now() + 5000; isAlive(builder) && Date.now() < deadline;) await new Promise((r) => setTimeout(r, 10));
    },
  };
}

/** The builder's stdin as lines: the nonce first, later archive.create's verdict; null once it has ended. */
function stdinLines(limit: number): (index: number) => Promise<string | null> {
  let text = '';
  let ended = false;
  let wake: () => void = () => {};
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (d: string) => {
    text = (text + d).slice(0, limit);
    wake();
  });
  const end = () => {
    ended = true;
    wake();
  };
  process.stdin.on('end', end);
  process.stdin.on('error', end);
  return async (index) => {
    for (;;) {
      const lines = text.split('\n');
      if (lines.length > index + 1) return lines[index]!;
      if (ended) return null;
      await new Promise<void>((r) => (wake = r));
    }
  };
}

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

const REASONS = {
  noSpace: 'The backup host ran out of disk space while building the archive.',
  tarFailed: 'The backup could not be read completely.',
  changed: 'The backup changed while it was being archived; please try again.',
  write: 'The archive could not be written on the backup host.',
  misconfigured: 'The backup host is misconfigured; the operator has been told in the log.',
} as const;

/** Entry of builder mode. Returns the process exit code. */
export async function runBuilder(cfg: DispatcherConfig, id: string, log: (detail: string) => void): Promise<number> {
  const line = stdinLines(256);
  const nonce = (await line(0)) ?? '';
  const rec = readRecord(cfg, id);
  const me = selfId();
  // Only a builder started by archive.create for this very record may proceed.
  if (
    !rec ||
    rec.state !== 'building' ||
    rec.builderNonce === null ||
    !sameSecret(nonce, rec.builderNonce) ||
    rec.builder?.pid !== me.pid
  ) {
    log(`builder ${id}: not started by archive.create, refusing`);
    return 1;
  }
  try {
    setPriority(cfg.niceness);
  } catch {
    // lowering our own priority cannot fail for root; ignore elsewhere
  }
  const outcome = await build(cfg, rec, log);
  if ((await line(1)) !== ADMIT) {
    // archive.create refused the request, or died before admitting it: the output belongs to nobody.
    // A record left "building" by a dead archive.create is reconciled as failed, like any dead build.
    rmSync(paths.partialFile(cfg, rec.id), { force: true });
    log(`builder ${id}: not admitted by archive.create, discarded`);
    return 1;
  }
  finish(cfg, rec, me, outcome, log);
  return outcome.ok ? 0 : 1;
}

/** How much newly written archive is flushed at a time while tar is still writing. */
const FLUSH_STEP_BYTES = 32 << 20;

type Outcome = { ok: true; size: number; sha256: string; files: number } | { ok: false; reason: string; detail: string };

async function build(cfg: DispatcherConfig, rec: ArchiveRecord, log: (d: string) => void): Promise<Outcome> {
  let dir: string;
  try {
    dir = snapshotDir(cfg, rec.customer, rec.snapshot);
  } catch (e) {
    return { ok: false, reason: REASONS.tarFailed, detail: `snapshot no longer resolvable: ${String(e)}` };
  }
  const partial = paths.partialFile(cfg, rec.id);
  let out: number;
  let fd: number;
  try {
    out = openSync(partial, 'wx', 0o600);
    fd = openSync(partial, 'r');
  } catch (e) {
    return { ok: false, reason: REASONS.write, detail: `open ${partial}: ${String(e)}` };
  }
  const hash = createHash('sha256');
  const counter = new TarMemberCounter();
  let bytes = 0;
  let lastProgress = 0;
  const progressPath = paths.progress(cfg, rec.id);
  const writeProgress = () => writeJsonAtomic(progressPath, { bytesWritten: bytes, filesWritten: counter.files }, 0o600, false);

  // GNU tar, never a shell: no -h (symlinks are stored as symlinks, never followed), `--` before the
  // path, GNU format for raw (non-UTF-8) names and files over 8 GiB, numeric owners for portability.
  const tarArgs = [cfg.tarPath, '--create', '--file=-', '--format=gnu', '--numeric-owner', '--directory', dir, '--', '.'];
  const argv = ['-n', String(cfg.niceness), cfg.ionicePath, '-c', String(cfg.ioniceClass), ...tarArgs];
  // tar's stdout IS the partial file: the bytes go straight to disk at plain-tar speed, and this
  // process follows the file behind tar, counting members and hashing what actually landed there.
  const tar = spawn(cfg.nicePath, argv, { stdio: ['ignore', out, 'pipe'], cwd: '/', env: { PATH: '/usr/bin:/bin', LC_ALL: 'C' } });
  closeSync(out);
  let stderr = '';
  tar.stderr!.setEncoding('utf8');
  tar.stderr!.on('data', (s: string) => {
    if (stderr.length < 4096) stderr += s;
  });
  let exit: [number | null, NodeJS.Signals | null] | null = null;
  tar.on('close', (c, sig) => (exit = [c, sig]));
  tar.on('error', (e) => {
    stderr += String(e);
    exit = [null, null];
  });

  // One fixed buffer: memory stays flat whatever the archive size.
  const buf = Buffer.allocUnsafe(1 << 20);
  let readError: unknown = null;
  // The archive must be on disk before it is called ready, but one fsync at the end would wait for
  // the whole archive to be written out only after tar is done. Flushing what has landed so far,
  // in the background while tar goes on, lets the disk write while tar reads; the last fsync then
  // has little left to do.
  let flushedTo = 0;
  let flushing = false;
  const flushBehind = () => {
    if (flushing || bytes - flushedTo < FLUSH_STEP_BYTES) return;
    flushing = true;
    const upTo = bytes;
    fdatasync(fd, (e) => {
      flushing = false;
      // A failed flush is not trusted: the final fsync below reports it.
      if (!e) flushedTo = upTo;
    });
  };
  for (;;) {
    let n = 0;
    try {
      n = readSync(fd, buf, 0, buf.length, bytes);
    } catch (e) {
      readError = e;
      tar.kill('SIGKILL');
    }
    if (n > 0) {
      const chunk = buf.subarray(0, n);
      hash.update(chunk);
      counter.push(chunk);
      bytes += n;
      flushBehind();
      const now = Date.now();
      if (now - lastProgress >= cfg.progressIntervalMs) {
        lastProgress = now;
        writeProgress();
      }
      continue;
    }
    // Only after tar has exited does a zero read mean the end of the archive.
    if (exit !== null || readError !== null) {
      if (readError !== null) break;
      const more = readSync(fd, buf, 0, 1, bytes);
      if (more === 0) break;
      continue;
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  while (exit === null || flushing) await new Promise((r) => setTimeout(r, 5));
  const [code, signal] = exit as [number | null, NodeJS.Signals | null];
  const fail = (reason: string, detail: string): Outcome => {
    try {
      closeSync(fd);
    } catch {
      // already closed
    }
    rmSync(partial, { force: true });
    return { ok: false, reason, detail };
  };
  const oneLine = stderr.replace(/\s+/g, ' ').slice(0, 500);
  if (readError !== null) return fail(REASONS.write, `read back: ${String(readError)}`);
  if (code !== 0) {
    // tar reports a full disk on stderr; the customer gets a reason they can act on (or wait for).
    // GNU tar says "No space left on device", or only "Wrote only N of M bytes" when a short write hits ENOSPC.
    const reason = /No space left on device|Wrote only \d+ of \d+ bytes/.test(stderr)
      ? REASONS.noSpace
      : code === 1
        ? REASONS.changed
        : REASONS.tarFailed;
    return fail(reason, `tar exit ${code} signal ${signal}: ${oneLine}`);
  }
  if (stderr !== '') log(`builder ${rec.id}: tar warnings: ${oneLine}`);
  try {
    fsyncSync(fd);
    closeSync(fd);
  } catch (e) {
    return fail(isErrno(e, 'ENOSPC') ? REASONS.noSpace : REASONS.write, `fsync: ${String(e)}`);
  }
  writeProgress();
  return { ok: true, size: bytes, sha256: hash.digest('hex'), files: counter.files };
}

function finish(cfg: DispatcherConfig, rec: ArchiveRecord, me: ProcessId, outcome: Outcome, log: (d: string) => void): void {
  const partial = paths.partialFile(cfg, rec.id);
  const final = paths.archiveFile(cfg, rec.id);
  let result: Outcome = outcome;
  let published = false;
  let markedFailed = false;
  mutateRecord(cfg, rec.id, (cur) => {
    // Cancelled (or reconciled) while we worked: our output belongs to nobody.
    if (cur.state !== 'building' || cur.builder?.pid !== me.pid) return null;
    if (result.ok) {
      const gid = groupId(cfg.nginxGroup);
      try {
        if (gid === null) throw new Error(`group ${cfg.nginxGroup} not found`);
        // nginx reads the archive through the link; nobody else on the host may.
        if (runningAsRoot()) chownSync(partial, 0, gid);
        chmodSync(partial, 0o640);
        renameSync(partial, final);
        fsyncDir(cfg.archiveRoot);
      } catch (e) {
        result = { ok: false, reason: REASONS.misconfigured, detail: `publish: ${String(e)}` };
      }
    }
    const nowAt = nowMs();
    if (result.ok) {
      published = true;
      const readyAt = new Date(nowAt).toISOString();
      const expiresAt = new Date(nowAt + cfg.archiveRetentionDays * 86400_000).toISOString();
      return {
        ...cur,
        state: 'ready',
        sizeBytes: result.size,
        sha256: result.sha256,
        filesWritten: result.files,
        readyAt,
        expiresAt,
        builder: null,
        builderNonce: null,
      };
    }
    markedFailed = true;
    return { ...cur, state: 'failed', failureReason: result.reason, builder: null, builderNonce: null };
  });
  if (!published) rmSync(partial, { force: true });
  const after = readRecord(cfg, rec.id);
  if (after?.state === 'ready' && published) {
    appendEvent(cfg, { type: 'archive.ready', customer: rec.customer, archiveId: rec.id, bytes: after.sizeBytes });
  } else if (markedFailed && !result.ok) {
    appendEvent(cfg, { type: 'archive.failed', customer: rec.customer, archiveId: rec.id, detail: result.reason });
  }
  if (!result.ok) log(`builder ${rec.id}: failed: ${result.detail}`);
  unlock(paths.buildLock(cfg, rec.customer), me);
}

// The detached archive builder: runs tar idle-priority, streams it to a partial file while counting and hashing.
import { spawn } from 'node:child_process';
import { createHash, timingSafeEqual } from 'node:crypto';
import { chmodSync, chownSync, closeSync, fsyncSync, openSync, readSync, renameSync, rmSync } from 'node:fs';
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
import { processStartTime, selfId, type ProcessId } from './process-id.js';
import { snapshotDir } from './snapshot-path.js';
import { TarMemberCounter } from './tar-counter.js';

/** The hidden argv word that starts builder mode; not an action, so the gate and sudoers never pass it. */
export const BUILDER_WORD = '__build';

/** Starts the builder as its own session (so cancel can signal tar with it) and hands it the nonce. */
export async function spawnBuilder(cfg: DispatcherConfig, id: string, nonce: string, beforeNonce: (builder: ProcessId) => void): Promise<void> {
  const env: Record<string, string> = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' };
  for (const k of ['ARCHWAY_DISPATCHER_CONFIG', 'ARCHWAY_DISPATCHER_NOW_OFFSET'] as const) {
    const v = process.env[k];
    if (v !== undefined) env[k] = v;
  }
  const script = process.argv[1] ?? fileURLToPath(import.meta.url);
  // stdout/stderr are not inherited: sshd would otherwise keep the session open until tar ends.
  const child = spawn(process.execPath, [script, BUILDER_WORD, id], { detached: true, stdio: ['pipe', 'ignore', 'ignore'], env, cwd: '/' });
  const pid = child.pid;
  if (pid === undefined) throw new Error('builder did not start');
  beforeNonce({ pid, startTime: processStartTime(pid) ?? '' });
  await new Promise<void>((resolve) => {
    child.stdin!.on('error', () => resolve()); // a builder that died at once is reconciled as failed later
    child.stdin!.end(nonce, () => resolve());
  });
  child.unref();
}

async function readStdin(limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of process.stdin) {
    size += (c as Buffer).length;
    if (size > limit) break;
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
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
  const nonce = await readStdin(256);
  const rec = readRecord(cfg, id);
  const me = selfId();
  // Only a builder started by archive.create for this very record may proceed.
  if (!rec || rec.state !== 'building' || rec.builderNonce === null || !sameSecret(nonce, rec.builderNonce) || rec.builder?.pid !== me.pid) {
    log(`builder ${id}: not started by archive.create, refusing`);
    return 1;
  }
  try {
    setPriority(cfg.niceness);
  } catch {
    // lowering our own priority cannot fail for root; ignore elsewhere
  }
  const outcome = await build(cfg, rec, log);
  finish(cfg, rec, me, outcome, log);
  return outcome.ok ? 0 : 1;
}

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
  while (exit === null) await new Promise((r) => setTimeout(r, 5));
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
    const reason = /No space left on device/.test(stderr) ? REASONS.noSpace : code === 1 ? REASONS.changed : REASONS.tarFailed;
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
      return { ...cur, state: 'ready', sizeBytes: result.size, sha256: result.sha256, filesWritten: result.files, readyAt, expiresAt, builder: null, builderNonce: null };
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

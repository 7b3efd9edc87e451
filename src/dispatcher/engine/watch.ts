// watch: follows nginx's JSON download log, removes used links and records which bytes each download delivered.
import { closeSync, fstatSync, openSync, readSync, rmSync, statSync } from 'node:fs';
import { canonicalIp, LINK_DIR_PATTERN } from '../../protocol/index.js';
import { mutateRecord } from './archive-store.js';
import { addRange, coveredBytes, coversAll, deliveredBy, type ByteRange } from './byte-ranges.js';
import { nowSeconds } from './clock.js';
import type { DispatcherConfig } from './config.js';
import { appendEvent, lastWatchPosition } from './events.js';
import { fail } from './failure.js';
import { readJsonOrNull, writeJsonAtomic } from './fsutil.js';
import { paths } from './layout.js';
import { tryLock, unlock } from './lock.js';
import type { LinkRecord } from './links.js';
import { selfId } from './process-id.js';

interface WatchState {
  ino: number;
  offset: number;
}

/** One line of `log_format archway_download` (see docs/BACKUP-HOST.md); anything else is skipped. */
interface DownloadLine {
  time: string;
  remote_addr: string;
  uri: string;
  status: number;
  bytes: number;
  completion: string;
  /** $sent_http_content_range: "" for a 200; lines from before resume support have none. */
  contentRange: string;
}

const URI_PATTERN = /^\/dl\/([0-9a-f]{32})\/([^/]+)$/;
const CHUNK = 1 << 20;

export function parseDownloadLine(line: string): DownloadLine | null {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return null;
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return null;
  const o = v as Record<string, unknown>;
  if (typeof o.uri !== 'string' || typeof o.remote_addr !== 'string' || typeof o.time !== 'string' || typeof o.completion !== 'string')
    return null;
  if (typeof o.status !== 'number' || typeof o.bytes !== 'number' || !Number.isSafeInteger(o.bytes) || o.bytes < 0) return null;
  const contentRange = o.content_range ?? '';
  if (typeof contentRange !== 'string' || contentRange.length > 64) return null;
  return { time: o.time, remote_addr: o.remote_addr, uri: o.uri, status: o.status, bytes: o.bytes, completion: o.completion, contentRange };
}

/** Applies one log line. Every step before the event is idempotent, so a replayed line changes nothing twice. */
function applyLine(cfg: DispatcherConfig, line: string, src: { ino: number; end: number }, note: (d: string) => void): void {
  if (line.trim() === '') return;
  const entry = parseDownloadLine(line);
  if (!entry) {
    note(`watch: skipped a line that is not a download log entry (${line.length} bytes)`);
    return;
  }
  const m = URI_PATTERN.exec(entry.uri);
  if (!m || !LINK_DIR_PATTERN.test(m[1] ?? '')) return; // not a download (error pages, favicon, probes)
  const linkId = m[1]!;
  // 403 (wrong address or signature), 410 (expired), 404: nothing was served. A stranger who saw
  // the URL must not be able to burn the customer's link, so only a 2xx response counts.
  if (entry.status < 200 || entry.status > 299) {
    note(`watch: ${entry.status} for link ${linkId} from ${entry.remote_addr}; link kept`);
    return;
  }
  const link = readJsonOrNull<LinkRecord>(paths.linkRecord(cfg, linkId));
  if (!link) {
    note(`watch: request for unknown link ${linkId} from ${entry.remote_addr} status ${entry.status}`);
    return;
  }
  // The link goes at the first request, finished or not: a link is for one download attempt.
  rmSync(paths.linkDir(cfg, linkId), { recursive: true, force: true });
  if (link.usedAt === null) writeJsonAtomic(paths.linkRecord(cfg, linkId), { ...link, usedAt: nowSeconds() });
  let size = null as number | null;
  let state = null as string | null;
  let sent: ByteRange | null = null;
  let delivered: ByteRange[] = [];
  let parts = 0;
  let completed = false;
  let counted = false;
  // The line's place in the log: one replayed after a crash (its record written, its event not) is no new part.
  const lineKey = `${src.ino}:${src.end}`;
  mutateRecord(cfg, link.archiveId, (rec) => {
    size = rec.sizeBytes;
    state = rec.state;
    // The replayed line that completed the download counts again, so its lost event is written now.
    const replayed = rec.deliveredFrom === lineKey && rec.state === 'downloaded';
    if ((rec.state !== 'ready' && !replayed) || rec.sizeBytes === null) return null;
    counted = true;
    sent = deliveredBy(entry.status, entry.contentRange, entry.bytes, rec.sizeBytes);
    delivered = sent ? addRange(rec.delivered ?? [], sent[0], sent[1]) : (rec.delivered ?? []);
    const newPart = sent !== null && sent[1] > sent[0] && rec.deliveredFrom !== lineKey;
    parts = (rec.deliveredParts ?? 0) + (newPart ? 1 : 0);
    // Downloaded once every byte went out, in one response or in ranges over several links.
    completed = sent !== null && coversAll(delivered, rec.sizeBytes);
    return { ...rec, delivered, deliveredParts: parts, deliveredFrom: lineKey, ...(completed ? { state: 'downloaded' as const } : {}) };
  });
  if (!counted) {
    // Only the first complete download counts: a later request (served before its link went) is noted, not recorded.
    note(
      `watch: ${entry.status} for link ${linkId} of ${link.archiveId} (${state ?? 'no record'}) from ${entry.remote_addr}, ${entry.bytes} bytes; not counted`,
    );
    return;
  }
  if (completed) {
    // A completed archive cannot be downloaded again: its token and its file are of no further use,
    // and the file's disk space is every customer's (the record stays for status and the operator).
    rmSync(paths.tokenHash(cfg, link.archiveId), { force: true });
    rmSync(paths.archiveFile(cfg, link.archiveId), { force: true });
  }
  const range = sent as ByteRange | null;
  const soFar = coveredBytes(delivered);
  appendEvent(cfg, {
    type: completed ? 'download.completed' : 'download.interrupted',
    customer: link.customer,
    archiveId: link.archiveId,
    // The log is nginx's, but an address is only recorded if it is one.
    ip: canonicalIp(entry.remote_addr),
    bytes: entry.bytes,
    detail:
      `status ${entry.status}, completion ${entry.completion || 'none'}, size ${size ?? 'unknown'}` +
      (range === null ? ', nothing counted' : `, counted ${range[1] - range[0]} bytes from byte ${range[0]}`) +
      `, delivered ${soFar} in ${parts} ${parts === 1 ? 'part' : 'parts'}`,
    delivered: { bytes: soFar, total: size ?? 0, parts },
    src,
  });
}

class Follower {
  fd: number | null = null;
  ino = -1;
  offset = 0;

  constructor(
    private readonly cfg: DispatcherConfig,
    private readonly note: (d: string) => void,
    /** The previous file after a rotation is followed without saving: the saved position is the current file's. */
    private readonly saves = true,
  ) {}

  /** Hands this follower's open file to a non-saving follower (this one is left closed). */
  handOver(): Follower {
    const old = new Follower(this.cfg, this.note, false);
    [old.fd, old.ino, old.offset] = [this.fd, this.ino, this.offset];
    this.fd = null;
    return old;
  }

  /** Reads and applies every complete line from offset; the offset moves only past whole lines. */
  drain(): number {
    if (this.fd === null) return 0;
    let applied = 0;
    const size = fstatSync(this.fd).size;
    if (size < this.offset) {
      // copytruncate-style rotation: the file started again from nothing.
      this.note(`watch: log truncated (size ${size} < offset ${this.offset}), reading from the start`);
      this.offset = 0;
    }
    const buf = Buffer.alloc(CHUNK);
    for (;;) {
      const n = readSync(this.fd, buf, 0, CHUNK, this.offset);
      if (n === 0) break;
      let start = 0;
      for (let nl = buf.indexOf(0x0a, 0); nl !== -1 && nl < n; nl = buf.indexOf(0x0a, start)) {
        const line = buf.toString('utf8', start, nl);
        const end = this.offset + nl + 1;
        applyLine(this.cfg, line, { ino: this.ino, end }, this.note);
        applied++;
        start = nl + 1;
      }
      if (start === 0) {
        // No newline in a full chunk: a runaway line; skip it rather than stall forever.
        if (n === CHUNK) {
          this.note('watch: skipped an over-long line');
          this.offset += n;
          continue;
        }
        break; // an unfinished last line: wait for nginx to finish writing it
      }
      this.offset += start;
      this.save();
    }
    return applied;
  }

  open(path: string, offset: number): boolean {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch {
      return false;
    }
    this.close();
    this.fd = fd;
    this.ino = fstatSync(fd).ino;
    this.offset = offset;
    return true;
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }

  save(): void {
    if (!this.saves) return;
    writeJsonAtomic(paths.watchState(this.cfg), { ino: this.ino, offset: this.offset } satisfies WatchState);
  }
}

function inodeOf(path: string): number | null {
  try {
    return statSync(path).ino;
  } catch {
    return null;
  }
}

function sizeOf(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

/** Where to resume: the saved position, moved forward past any line an event already accounts for. */
function resumePoint(cfg: DispatcherConfig): WatchState | null {
  const saved = readJsonOrNull<WatchState>(paths.watchState(cfg));
  const fromEvents = lastWatchPosition(cfg);
  if (saved && fromEvents && fromEvents.ino === saved.ino) return { ino: saved.ino, offset: Math.max(saved.offset, fromEvents.end) };
  // Saved on the current file: a newer event of another file came from the previous one, followed after a rotation.
  if (saved && saved.ino === inodeOf(cfg.downloadLog)) return saved;
  if (
    fromEvents &&
    (!saved || fromEvents.ino !== saved.ino) &&
    (inodeOf(cfg.downloadLog) === fromEvents.ino || inodeOf(`${cfg.downloadLog}.1`) === fromEvents.ino)
  ) {
    return { ino: fromEvents.ino, offset: fromEvents.end };
  }
  return saved;
}

export async function runWatch(cfg: DispatcherConfig, note: (d: string) => void): Promise<{ stopped: true }> {
  const me = selfId();
  const lock = tryLock(paths.watchLock(cfg), me);
  if (!lock.taken) fail('already_running', `watch already running as pid ${lock.holder.pid}`);
  let stopping = false;
  const stop = () => {
    stopping = true;
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  const f = new Follower(cfg, note);
  // After a rotation, nginx workers that were serving a download when nginx reloaded log its end to
  // the old file; it is followed until the next rotation (logrotate reloads nginx, see docs).
  let previous: Follower | null = null;
  try {
    const resume = resumePoint(cfg);
    const rotated = `${cfg.downloadLog}.1`;
    // Lines written to the old file before we were restarted after a rotation are still ours.
    if (resume && inodeOf(cfg.downloadLog) !== resume.ino && inodeOf(rotated) === resume.ino && f.open(rotated, resume.offset)) {
      f.drain();
      f.close();
      f.open(cfg.downloadLog, 0);
    } else if (resume && inodeOf(cfg.downloadLog) === resume.ino) {
      f.open(cfg.downloadLog, resume.offset);
    } else {
      f.open(cfg.downloadLog, 0);
    }
    while (!stopping) {
      if (f.fd === null) f.open(cfg.downloadLog, 0);
      f.drain();
      previous?.drain();
      const current = inodeOf(cfg.downloadLog);
      // Rotated by rename: nginx keeps writing the old file until it reopens its logs, so switch
      // only once the new file has content (nginx has reopened) and the old one is drained.
      if (f.fd !== null && current !== null && current !== f.ino && sizeOf(cfg.downloadLog) > 0) {
        f.drain();
        previous?.close();
        previous = f.handOver();
        f.open(cfg.downloadLog, 0);
        f.save();
        continue;
      }
      await new Promise((r) => setTimeout(r, cfg.watchPollMs));
    }
    f.drain();
    previous?.drain();
    if (f.fd !== null) f.save();
  } finally {
    f.close();
    previous?.close();
    process.off('SIGTERM', stop);
    process.off('SIGINT', stop);
    unlock(paths.watchLock(cfg), me);
  }
  return { stopped: true };
}

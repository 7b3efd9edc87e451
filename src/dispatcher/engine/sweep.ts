// sweep: removes expired links, archives past retention, leftover partial files and old client addresses. Never looks at BACKUP_ROOT.
import { lstatSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { LINK_DIR_PATTERN } from '../../protocol/index.js';
import { listRecordIds, mutateRecord, readRecord, reconcile } from './archive-store.js';
import { nowMs, nowSeconds } from './clock.js';
import type { DispatcherConfig } from './config.js';
import { appendEvent } from './events.js';
import { readJsonOrNull, writeJsonAtomic } from './fsutil.js';
import { paths } from './layout.js';
import type { LinkRecord } from './links.js';
import { tryLock, unlock } from './lock.js';
import { selfId } from './process-id.js';
import { applyLogRetention } from './retention.js';

const ARCHIVE_FILE = /^([0-9a-f]{32})\.tar(\.partial)?$/;

export function runSweep(cfg: DispatcherConfig, note: (d: string) => void) {
  const now = nowSeconds();
  let linksRemoved = 0;
  let archivesExpired = 0;
  let partialsRemoved = 0;
  let buildsFailed = 0;
  let linkIpsRemoved = 0;

  // Links: the directory lives for its TTL plus a grace period for a download that started just in
  // time. Removing it does not cut a download in progress (nginx holds the file open), and nginx
  // logs that download only when it ends, so the record stays for watch until the archive is gone.
  const knownLinks = new Set<string>();
  for (const name of safeList(join(cfg.stateDir, 'links'))) {
    const linkId = name.replace(/\.json$/, '');
    if (!LINK_DIR_PATTERN.test(linkId) || !name.endsWith('.json')) continue;
    let link = readJsonOrNull<LinkRecord>(paths.linkRecord(cfg, linkId));
    knownLinks.add(linkId);
    if (link && now <= link.expires + cfg.linkGraceSeconds) continue;
    if (!link || link.dirRemovedAt == null) {
      rmSync(paths.linkDir(cfg, linkId), { recursive: true, force: true });
      linksRemoved++;
      if (link) {
        link = { ...link, dirRemovedAt: now };
        writeJsonAtomic(paths.linkRecord(cfg, linkId), link);
        if (link.usedAt === null)
          appendEvent(cfg, { type: 'link.expired', customer: link.customer, archiveId: link.archiveId, ip: link.ip || null });
      }
    }
    const archive = link ? readRecord(cfg, link.archiveId) : null;
    const archiveGone = !archive || (archive.state !== 'ready' && archive.state !== 'downloaded');
    if (
      !link ||
      (archiveGone && now > link.expires + cfg.linkGraceSeconds) ||
      now > link.expires + Math.max(1, cfg.archiveRetentionDays) * 86400
    ) {
      rmSync(paths.linkRecord(cfg, linkId), { force: true });
    } else if (link.ip !== '' && now > link.createdAt + cfg.ipRetentionDays * 86400) {
      // A record kept for a long-lived archive outlives the address period: the address goes, the record stays for watch.
      writeJsonAtomic(paths.linkRecord(cfg, linkId), { ...link, ip: '' });
      linkIpsRemoved++;
    }
  }
  // Link directories nobody recorded (a crash between mkdir and the record) go after the same delay.
  for (const name of safeList(cfg.linkRoot)) {
    if (!LINK_DIR_PATTERN.test(name) || knownLinks.has(name)) continue;
    const full = paths.linkDir(cfg, name);
    const age = (nowMs() - lstatSync(full).mtimeMs) / 1000;
    if (age > cfg.linkTtlSeconds + cfg.linkGraceSeconds) {
      rmSync(full, { recursive: true, force: true });
      linksRemoved++;
    }
  }

  // Archives: builds with a dead builder fail; ready or downloaded ones expire after retention.
  const records = new Map<string, string>();
  for (const id of listRecordIds(cfg)) {
    let rec = readRecord(cfg, id);
    if (!rec) continue;
    const before = rec.state;
    rec = reconcile(cfg, rec);
    if (before === 'building' && rec.state === 'failed') buildsFailed++;
    if ((rec.state === 'ready' || rec.state === 'downloaded') && rec.expiresAt !== null && Date.parse(rec.expiresAt) <= nowMs()) {
      let expired = false;
      mutateRecord(cfg, id, (cur) => {
        if (cur.state !== 'ready' && cur.state !== 'downloaded') return null;
        expired = true;
        return { ...cur, state: 'expired' };
      });
      if (expired) {
        rmSync(paths.archiveFile(cfg, id), { force: true });
        rmSync(paths.tokenHash(cfg, id), { force: true });
        archivesExpired++;
        appendEvent(cfg, { type: 'archive.expired', customer: rec.customer, archiveId: id });
      }
      rec = readRecord(cfg, id) ?? rec;
    }
    records.set(id, rec.state);
    // Records of archives that no longer exist are kept a month for status calls, then forgotten.
    const forgetAfterMs = (cfg.archiveRetentionDays + 30) * 86400_000;
    if (
      (rec.state === 'failed' || rec.state === 'cancelled' || rec.state === 'expired') &&
      nowMs() - Date.parse(rec.createdAt) > forgetAfterMs
    ) {
      rmSync(paths.record(cfg, id), { force: true });
      rmSync(paths.progress(cfg, id), { force: true });
      rmSync(paths.tokenHash(cfg, id), { force: true });
    }
  }

  // Files in ARCHIVE_ROOT: partials of builds that are not running, archives nobody can reach.
  for (const name of safeList(cfg.archiveRoot)) {
    const m = ARCHIVE_FILE.exec(name);
    if (!m) continue; // not ours: leave it alone
    // Re-read: a build may have started after the records were listed above.
    const state = records.get(m[1]!) === 'building' ? 'building' : readRecord(cfg, m[1]!)?.state;
    const isPartial = m[2] !== undefined;
    // A downloaded archive's file goes at once (watch); one left by a crash in between goes here.
    const keep = isPartial ? state === 'building' : state === 'ready';
    if (keep) continue;
    rmSync(join(cfg.archiveRoot, name), { force: true });
    if (isPartial) partialsRemoved++;
    note(`sweep: removed ${name} (state ${state ?? 'no record'})`);
  }
  return { linksRemoved, archivesExpired, partialsRemoved, buildsFailed, linkIpsRemoved, ...logRetention(cfg, note) };
}

/** One sweep at a time rewrites the logs (they share temp file names); another one running skips this part. */
function logRetention(cfg: DispatcherConfig, note: (d: string) => void) {
  const me = selfId();
  const lock = tryLock(paths.sweepLock(cfg), me);
  if (!lock.taken) {
    note(`sweep: logs left to the sweep running as pid ${lock.holder.pid}`);
    return { eventsAnonymised: 0, callLinesRemoved: 0, downloadLinesBlanked: 0, downloadLogsRemoved: 0 };
  }
  try {
    return applyLogRetention(cfg);
  } finally {
    unlock(paths.sweepLock(cfg), me);
  }
}

function safeList(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

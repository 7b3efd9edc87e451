// link.issue: checks the token in constant time and makes a short-lived, IP-bound nginx secure_link.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { chownSync, existsSync, mkdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { secureLinkMd5, type LinkIssueRequest, type LinkIssueResult } from '../../protocol/index.js';
import { ownedRecord } from './archives.js';
import { nowMs, nowSeconds } from './clock.js';
import type { DispatcherConfig } from './config.js';
import { appendEvent } from './events.js';
import { fail, internal } from './failure.js';
import { fsyncDir, writeJsonAtomic } from './fsutil.js';
import { groupId, runningAsRoot } from './group.js';
import { paths } from './layout.js';
import { admit } from './limits.js';

export interface LinkRecord {
  linkId: string;
  archiveId: string;
  customer: string;
  ip: string;
  fileName: string;
  createdAt: number;
  expires: number;
  /** Set by watch once nginx logged a request for the link; the record stays for late log lines. */
  usedAt: number | null;
  /** Set by sweep when the link directory went at expiry plus grace. */
  dirRemovedAt?: number | null;
}

function readSecret(cfg: DispatcherConfig): string {
  let secret: string;
  try {
    secret = readFileSync(cfg.secureLinkSecretFile, 'utf8').split('\n')[0]?.trim() ?? '';
  } catch (e) {
    internal(`secure link secret unreadable: ${String(e)}`);
  }
  if (secret.length < 16) internal('secure link secret shorter than 16 characters');
  return secret;
}

/** Compares sha256(token) with the stored hash without revealing, through timing, how much matched. */
function tokenMatches(cfg: DispatcherConfig, archiveId: string, token: string): boolean {
  let stored: string;
  try {
    stored = readFileSync(paths.tokenHash(cfg, archiveId), 'utf8').trim();
  } catch {
    return false;
  }
  const expected = Buffer.from(stored, 'hex');
  const actual = createHash('sha256').update(token, 'utf8').digest();
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}

export function issueLink(cfg: DispatcherConfig, req: LinkIssueRequest): LinkIssueResult {
  // Counted before anything else: whoever holds the portal's key can ask, so every ask is bounded.
  admit(cfg, 'link.issue', req.customer);
  const rec = ownedRecord(cfg, req.customer, req.archiveId);
  // State first: the portal has already checked ownership, and "already downloaded" helps the customer more.
  if (rec.state === 'downloaded') fail('downloaded', `link refused: ${req.archiveId} downloaded`);
  if (rec.state === 'expired' || (rec.state === 'ready' && rec.expiresAt !== null && Date.parse(rec.expiresAt) <= nowMs())) {
    fail('expired', `link refused: ${req.archiveId} past retention`);
  }
  if (rec.state !== 'ready') fail('not_ready', `link refused: ${req.archiveId} is ${rec.state}`);
  if (!tokenMatches(cfg, req.archiveId, req.token)) fail('bad_token', `token mismatch for ${req.archiveId} from ${req.clientIp}`);
  // A ready record without its file (removed by hand, disk replaced) must not give a dead link.
  if (!existsSync(paths.archiveFile(cfg, rec.id))) internal(`archive file of ${rec.id} is missing`);
  const secret = readSecret(cfg);
  const linkId = randomBytes(16).toString('hex');
  const dir = paths.linkDir(cfg, linkId);
  const fileName = rec.downloadFileName;
  const gid = groupId(cfg.nginxGroup);
  if (gid === null) internal(`group ${cfg.nginxGroup} not found`);
  // The directory name is the unguessable part; nginx (group) may traverse it, nobody else may.
  mkdirSync(dir, { mode: 0o750 });
  try {
    if (runningAsRoot()) chownSync(dir, 0, gid);
    symlinkSync(paths.archiveFile(cfg, rec.id), join(dir, fileName));
    fsyncDir(cfg.linkRoot);
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    internal(`link creation failed: ${String(e)}`);
  }
  const expires = nowSeconds() + cfg.linkTtlSeconds;
  const link: LinkRecord = {
    linkId,
    archiveId: rec.id,
    customer: rec.customer,
    ip: req.clientIp,
    fileName,
    createdAt: nowSeconds(),
    expires,
    usedAt: null,
  };
  writeJsonAtomic(paths.linkRecord(cfg, linkId), link);
  const uri = `/dl/${linkId}/${fileName}`;
  const md5 = secureLinkMd5(expires, uri, req.clientIp, secret);
  appendEvent(cfg, { type: 'link.issued', customer: rec.customer, archiveId: rec.id, ip: req.clientIp, detail: `expires ${expires}` });
  return { url: `${cfg.downloadBaseUrl}${uri}?md5=${md5}&expires=${expires}`, expires, lifetimeSeconds: cfg.linkTtlSeconds, fileName };
}

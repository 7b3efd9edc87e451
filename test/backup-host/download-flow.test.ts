// The whole download path with the real programs: portal client -> sshd -> gate -> sudo -> dispatcher -> nginx -> watch.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, stat, symlink, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BackupHostKeyMismatch,
  BackupHostRefused,
  BackupHostUnreachable,
  backupHostFromSettings,
  runBackupHostCheck,
  type BackupHost,
  type SshBackupHostSettings,
} from '../../src/backup-host/index.js';
import { hashToken, newToken, type ArchiveStatusResult, type DispatcherEvent } from '../../src/protocol/index.js';
import { findProgram, run } from '../harness/sshd.js';
import { ENCRYPTED_KEY_PASSPHRASE, eventually, startBackupHost, type BackupHostFixture, type WatchProcess } from './fixture.js';
import { httpGet } from './http-get.js';

const CUSTOMER = 'example.org';
const BIG_CUSTOMER = 'big.example.net';
const LINK_TTL = 3;

let host: BackupHostFixture;
let watch: WatchProcess;
let settings: SshBackupHostSettings;
let client: BackupHost;

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Waits for `probe`; a timeout says what watch printed, the usual reason for a wait that never ends. */
const until = <T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 20_000) =>
  eventually(what, probe, { timeoutMs, explain: () => `watch said:\n${watch?.output() ?? ''}` });

/** A generated backup snapshot: nested directories, random files, an empty file and a symlink out. */
async function makeSnapshot(customer: string, snapshot: string, bytes: number): Promise<void> {
  const dir = join(host.backupRoot, customer, snapshot);
  await mkdir(join(dir, 'public', 'media', 'cache'), { recursive: true });
  await mkdir(join(dir, 'db'), { recursive: true });
  await writeFile(join(dir, 'db', 'dump.sql'), randomBytes(bytes));
  for (let i = 0; i < 200; i++) await writeFile(join(dir, 'public', 'media', 'cache', `f${i}.bin`), randomBytes(1000 + i));
  await writeFile(join(dir, 'empty'), '');
  // A symlink pointing outside the backup must be archived as a link, never followed.
  await symlink('/etc/shadow', join(dir, 'shadow-link'));
}

async function buildReady(customer: string, snapshot: string): Promise<{ archiveId: string; status: ArchiveStatusResult }> {
  const { archiveId } = await client.createArchive({ customer, snapshot });
  const status = await until('the archive to be ready', async () => {
    const s = await client.archiveStatus({ customer, archiveId });
    if (s.state === 'failed') throw new Error(`build failed: ${s.failureReason}`);
    return s.state === 'ready' ? s : undefined;
  });
  return { archiveId, status };
}

/** Every token the test handed out, to prove afterwards that none was written anywhere. */
const tokensUsed: string[] = [];

async function armedLink(customer: string, archiveId: string, ip: string) {
  const token = newToken();
  tokensUsed.push(token);
  await client.armArchive({ customer, archiveId, tokenHash: hashToken(token) });
  return { token, link: await client.issueLink({ customer, archiveId, token, clientIp: ip }) };
}

async function events(): Promise<DispatcherEvent[]> {
  return (await client.eventsSince({ after: 0, limit: 1000 })).events;
}

/** Waits until watch has noted `text` in the call log. */
const noted = (what: string, text: string) =>
  until(what, async () => ((await readFile(join(host.stateDir, 'dispatcher.log'), 'utf8')).includes(text) ? true : undefined));

function linkDirOf(url: string): string {
  const m = /\/dl\/([0-9a-f]{32})\//.exec(url);
  if (!m?.[1]) throw new Error(`not a download URL: ${url}`);
  return join(host.linkRoot, m[1]);
}

beforeAll(async () => {
  host = await startBackupHost({
    linkTtlSeconds: LINK_TTL,
    linkGraceSeconds: 0,
    dispatcherSettings: { progressIntervalMs: 20, watchPollMs: 50 },
  });
  watch = await host.startWatch();
  settings = host.portalSettings;
  client = backupHostFromSettings(settings);
  await makeSnapshot(CUSTOMER, 'daily.1', 1024 * 1024);
  await makeSnapshot(CUSTOMER, 'daily.0', 48 * 1024 * 1024);
});

afterAll(async () => {
  await host?.stop();
});

describe('reaching the backup host', () => {
  it('pings it over SSH and learns its version, roots and free space', async () => {
    const ping = await client.ping();
    expect(ping.roots).toEqual({ backup: true, archive: true, link: true });
    expect(typeof ping.version).toBe('string');
    expect(ping.freeBytes).toBeGreaterThan(0);
    expect(Math.abs(Date.parse(ping.time) - Date.now())).toBeLessThan(10_000);
  });

  it('connects with a passphrase-protected key given its passphrase', async () => {
    const encrypted = backupHostFromSettings({
      ...settings,
      privateKeyPath: host.encryptedPortalKey.privateKeyPath,
      privateKeyPassphrase: ENCRYPTED_KEY_PASSPHRASE,
    });
    expect((await encrypted.ping()).roots.backup).toBe(true);
  });

  it('prints a healthy report for `archway backup-host check`', async () => {
    let text = '';
    const code = await runBackupHostCheck(settings, { write: (s: string) => (text += s) });
    expect(code).toBe(0);
    expect(text).toContain('roots: backup ok, archive ok, link ok');
    expect(text).toContain('result: OK');
  });

  it('refuses to talk to a host whose key is not the pinned one', async () => {
    const pinnedElsewhere = backupHostFromSettings({ ...settings, hostKeyFingerprint: host.portalKey.fingerprint });
    const err = await pinnedElsewhere.ping().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackupHostKeyMismatch);
    expect((err as BackupHostKeyMismatch).presented).toBe(host.sshd.hostKeyFingerprint);
    let text = '';
    expect(
      await runBackupHostCheck({ ...settings, hostKeyFingerprint: host.portalKey.fingerprint }, { write: (s: string) => (text += s) }),
    ).toBe(1);
    expect(text).toMatch(/BackupHostKeyMismatch: backup host key mismatch/);
  });

  it('is refused when the portal key is used from an address other than its from= binding', async () => {
    const fromElsewhere = backupHostFromSettings({ ...settings, localAddress: '127.0.0.2' });
    await expect(fromElsewhere.ping()).rejects.toThrow(BackupHostUnreachable);
    const otherKey = backupHostFromSettings({ ...settings, privateKeyPath: host.elsewhereKey.privateKeyPath });
    await expect(otherKey.ping()).rejects.toThrow(/refused our key/);
  });

  it('lists a customer snapshots and refuses a customer name that is not a domain', async () => {
    const { snapshots } = await client.listBackups({ customer: CUSTOMER });
    expect(snapshots.map((s) => s.name).sort()).toEqual(['daily.0', 'daily.1']);
    await expect(client.listBackups({ customer: '../etc' })).rejects.toThrow(BackupHostRefused);
  });
});

describe('building and downloading an archive', () => {
  let archiveId = '';
  let status: ArchiveStatusResult;
  let archivePath = '';

  it('builds an archive whose size and SHA-256 match the file, readable by nginx only', async () => {
    ({ archiveId, status } = await buildReady(CUSTOMER, 'daily.1'));
    archivePath = join(host.archiveRoot, `${archiveId}.tar`);
    const st = await stat(archivePath);
    expect(status.sizeBytes).toBe(st.size);
    expect(status.sha256).toBe(await sha256File(archivePath));
    expect(status.bytesWritten).toBe(st.size);
    expect(status.filesWritten).toBeGreaterThanOrEqual(203);
    expect(st.mode & 0o777).toBe(0o640);
    expect(status.downloadFileName).toBe(`${CUSTOMER}-daily.1-${archiveId.slice(0, 8)}.tar`);
    const listing = (await run(findProgram('tar'), ['-tvf', archivePath])).stdout;
    expect(listing).toMatch(/^l.*shadow-link -> \/etc\/shadow$/m);
    expect(listing).toContain('db/dump.sql');
  });

  it('answers archive.statuses through the gate and sudo: this archive, and not_found for it under another customer', async () => {
    const outcomes = await client.archiveStatuses([
      { customer: CUSTOMER, archiveId },
      { customer: BIG_CUSTOMER, archiveId: 'e'.repeat(32) },
    ]);
    expect(outcomes[0]).toEqual({
      customer: CUSTOMER,
      archiveId,
      ok: true,
      status: await client.archiveStatus({ customer: CUSTOMER, archiveId }),
    });
    const [forged] = await client.archiveStatuses([{ customer: BIG_CUSTOMER, archiveId }]);
    expect(forged).toMatchObject({ ok: false, error: { code: 'not_found', reason: 'not_found' } });
    expect(outcomes[1]).toMatchObject({ ok: false, error: { code: 'not_found' } });
  });

  it('refuses a link for a token other than the armed one', async () => {
    await client.armArchive({ customer: CUSTOMER, archiveId, tokenHash: hashToken(newToken()) });
    await expect(client.issueLink({ customer: CUSTOMER, archiveId, token: newToken(), clientIp: '127.0.0.2' })).rejects.toThrow(
      BackupHostRefused,
    );
    expect(await readdir(host.linkRoot)).toEqual([]);
  });

  it('issues a link for the customer address; the download is byte-identical; then the archive is downloaded and the link gone', async () => {
    const { link } = await armedLink(CUSTOMER, archiveId, '127.0.0.2');
    expect(link.url.startsWith(`${host.downloadBaseUrl}/dl/`)).toBe(true);
    expect(link.fileName).toBe(status.downloadFileName);
    expect(link.expires).toBeGreaterThan(Date.now() / 1000);
    expect(existsSync(linkDirOf(link.url))).toBe(true);

    // Read first: watch deletes the file as soon as the download completes.
    const expected = await readFile(archivePath);
    const got = await httpGet(link.url, { localAddress: '127.0.0.2' });
    expect(got.status).toBe(200);
    expect(got.body.equals(expected)).toBe(true);
    expect(got.headers['content-disposition']).toBe(`attachment; filename="${link.fileName}"`);

    const after = await until('the download to be recorded', async () => {
      const s = await client.archiveStatus({ customer: CUSTOMER, archiveId });
      return s.state === 'downloaded' ? s : undefined;
    });
    expect(after.state).toBe('downloaded');
    expect(existsSync(linkDirOf(link.url))).toBe(false);
    const completed = (await events()).filter((e) => e.type === 'download.completed' && e.archiveId === archiveId);
    expect(completed).toHaveLength(1);
    expect(completed[0]).toMatchObject({ customer: CUSTOMER, ip: '127.0.0.2', bytes: status.sizeBytes });
    // Its disk space goes back at once; the record stays for the customer's page and the operator.
    expect(existsSync(archivePath)).toBe(false);
    expect(after).toMatchObject({ sizeBytes: status.sizeBytes, sha256: status.sha256 });
  });

  it('refuses a second link once the archive was downloaded', async () => {
    const token = newToken();
    await expect(client.armArchive({ customer: CUSTOMER, archiveId, tokenHash: hashToken(token) })).rejects.toThrow(BackupHostRefused);
    await expect(client.issueLink({ customer: CUSTOMER, archiveId, token, clientIp: '127.0.0.2' })).rejects.toThrow(BackupHostRefused);
  });
});

describe('links that must not work, and a download that stops half-way', () => {
  let archiveId = '';
  let status: ArchiveStatusResult;

  beforeAll(async () => {
    ({ archiveId, status } = await buildReady(CUSTOMER, 'daily.0'));
  });

  it('answers 403 to the link fetched from another address, which does not burn the link', async () => {
    const { link } = await armedLink(CUSTOMER, archiveId, '127.0.0.2');
    const stranger = await httpGet(link.url, { localAddress: '127.0.0.3' });
    expect(stranger.status).toBe(403);
    expect(stranger.body.toString()).toContain('not valid here');
    // NGINX is done with the request once its access log has the line; the download log, the only
    // thing watch reads, must have none, so no stranger can burn the customer's link.
    const linkId = basename(linkDirOf(link.url));
    await until('NGINX to log the refused request', async () =>
      (await readFile(host.nginx!.accessLog, 'utf8')).includes(linkId) ? true : undefined,
    );
    expect(await readFile(host.downloadLog, 'utf8')).not.toContain(linkId);
    expect(existsSync(linkDirOf(link.url))).toBe(true);
    expect((await client.archiveStatus({ customer: CUSTOMER, archiveId })).state).toBe('ready');
  });

  it('answers 410 to an expired link and leaves the archive ready', async () => {
    const { link } = await armedLink(CUSTOMER, archiveId, '127.0.0.2');
    await new Promise((r) => setTimeout(r, (LINK_TTL + 1.5) * 1000));
    const late = await httpGet(link.url, { localAddress: '127.0.0.2' });
    expect(late.status).toBe(410);
    expect(late.body.toString()).toContain('expired');
    expect((await client.archiveStatus({ customer: CUSTOMER, archiveId })).state).toBe('ready');
  });

  it('removes the link when a download stops half-way, records it as interrupted, and a new link still works', async () => {
    const size = status.sizeBytes ?? 0;
    const { link } = await armedLink(CUSTOMER, archiveId, '127.0.0.2');
    const partial = await httpGet(link.url, { localAddress: '127.0.0.2', stopAfterBytes: Math.floor(size / 2), discardBody: true });
    expect(partial.status).toBe(200);
    expect(partial.aborted).toBe(true);
    await until('the used link to be removed', async () => (existsSync(linkDirOf(link.url)) ? undefined : true));
    const interrupted = await until('the interruption to be recorded', async () =>
      (await events()).find((e) => e.type === 'download.interrupted' && e.archiveId === archiveId),
    );
    expect(interrupted).toMatchObject({ customer: CUSTOMER, ip: '127.0.0.2' });
    expect(interrupted.bytes).toBeLessThan(size);
    expect((await client.archiveStatus({ customer: CUSTOMER, archiveId })).state).toBe('ready');

    const again = await armedLink(CUSTOMER, archiveId, '127.0.0.2');
    const whole = await httpGet(again.link.url, { localAddress: '127.0.0.2', discardBody: true });
    expect(whole.status).toBe(200);
    expect(whole.sha256).toBe(status.sha256);
    await until('the download to be recorded', async () =>
      (await client.archiveStatus({ customer: CUSTOMER, archiveId })).state === 'downloaded' ? true : undefined,
    );
  });
});

describe('the download log over time', () => {
  async function downloadAnArchive(): Promise<string> {
    const { archiveId, status } = await buildReady(CUSTOMER, 'daily.1');
    const { link } = await armedLink(CUSTOMER, archiveId, '127.0.0.2');
    const got = await httpGet(link.url, { localAddress: '127.0.0.2', discardBody: true });
    expect(got.sha256).toBe(status.sha256);
    return archiveId;
  }

  async function completedDownloads(archiveId: string): Promise<number> {
    return (await events()).filter((e) => e.type === 'download.completed' && e.archiveId === archiveId).length;
  }

  it('keeps recording downloads after logrotate moves the log away and nginx reopens it', async () => {
    await rename(host.downloadLog, `${host.downloadLog}.1`);
    host.nginx!.reopenLogs();
    await until('nginx to reopen its logs', async () => (existsSync(host.downloadLog) ? true : undefined));
    const archiveId = await downloadAnArchive();
    await until('the download to be recorded', async () => ((await completedDownloads(archiveId)) === 1 ? true : undefined));
    expect((await client.archiveStatus({ customer: CUSTOMER, archiveId })).state).toBe('downloaded');
  });

  it('counts only the first of two whole downloads of one link served before watch removed it', async () => {
    const { archiveId, status } = await buildReady(CUSTOMER, 'daily.1');
    const { link } = await armedLink(CUSTOMER, archiveId, '127.0.0.2');
    // Watch paused: nginx serves the link twice in a row, as it could in the moment before watch reads the log.
    watch.child.kill('SIGSTOP');
    let twice: Array<{ status: number; sha256: string }>;
    try {
      twice = [
        await httpGet(link.url, { localAddress: '127.0.0.2', discardBody: true }),
        await httpGet(link.url, { localAddress: '127.0.0.2', discardBody: true }),
      ];
    } finally {
      watch.child.kill('SIGCONT');
    }
    expect(twice.map((g) => [g.status, g.sha256])).toEqual([
      [200, status.sha256],
      [200, status.sha256],
    ]);
    // The second line is the sentinel: watch notes it in the call log without recording it.
    await noted('watch to note the second download', `of ${archiveId} (downloaded) from 127.0.0.2, ${status.sizeBytes} bytes; not counted`);
    expect(await completedDownloads(archiveId)).toBe(1);
    expect((await events()).filter((e) => e.archiveId === archiveId && e.type.startsWith('download.'))).toHaveLength(1);
    expect(existsSync(join(host.archiveRoot, `${archiveId}.tar`))).toBe(false);
  });

  it('records a download made while watch was stopped once it runs again, exactly once', async () => {
    await watch.stop();
    const archiveId = await downloadAnArchive();
    expect((await client.archiveStatus({ customer: CUSTOMER, archiveId })).state).toBe('ready');
    watch = await host.startWatch();
    await until('the download to be recorded', async () => ((await completedDownloads(archiveId)) === 1 ? true : undefined));
    // A later download is the sentinel: watch reads in order, so a second count would come before it.
    const later = await downloadAnArchive();
    await until('the later download to be recorded', async () => ((await completedDownloads(later)) === 1 ? true : undefined));
    expect(await completedDownloads(archiveId)).toBe(1);
    expect((await client.archiveStatus({ customer: CUSTOMER, archiveId })).state).toBe('downloaded');
  });
});

describe('a builder that dies', () => {
  it('shows progress moving, and once killed the archive is failed and no partial file is left after sweep', async () => {
    const dir = join(host.backupRoot, BIG_CUSTOMER, 'daily.0');
    await mkdir(dir, { recursive: true });
    // A sparse file: large to archive, nearly free to create.
    const fh = await open(join(dir, 'huge.img'), 'w');
    await fh.truncate(6 * 1024 ** 3);
    await fh.close();

    const { archiveId } = await client.createArchive({ customer: BIG_CUSTOMER, snapshot: 'daily.0' });
    const seen: number[] = [];
    await until('progress to move', async () => {
      const s = await client.archiveStatus({ customer: BIG_CUSTOMER, archiveId });
      expect(s.state).toBe('building');
      seen.push(s.bytesWritten);
      return seen.filter((b) => b > 0).length >= 2 && seen[seen.length - 1]! > seen.find((b) => b > 0)! ? true : undefined;
    });
    expect([...seen].sort((a, b) => a - b)).toEqual(seen);

    const pids = await builderPids(archiveId);
    expect(pids.length).toBeGreaterThan(0);
    for (const pid of pids) {
      // The builder leads its own process group (tar is in it); kill the group, or the process.
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        process.kill(pid, 'SIGKILL');
      }
    }

    const sweep = await host.runLocal('sweep');
    expect(sweep.code).toBe(0);
    const s = await client.archiveStatus({ customer: BIG_CUSTOMER, archiveId });
    expect(s.state).toBe('failed');
    expect(s.failureReason).toEqual(expect.any(String));
    expect((await readdir(host.archiveRoot)).filter((n) => n.startsWith(archiveId))).toEqual([]);
  });
});

describe('what is left behind', () => {
  it('never wrote a download token to any log, state file or archive on the backup host', async () => {
    expect(tokensUsed.length).toBeGreaterThanOrEqual(5);
    const files = await filesUnder(host.base, [host.backupRoot]);
    expect(files.length).toBeGreaterThan(10);
    const texts = [host.sshd.log(), watch.output()];
    for (const file of files) texts.push((await readFile(file)).toString('latin1'));
    for (const token of tokensUsed) {
      expect(texts.some((t) => t.includes(token))).toBe(false);
    }
  });
});

/** Regular files below dir (not following symlinks), skipping the given subtrees. */
async function filesUnder(dir: string, skip: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = join(dir, entry.name);
    if (skip.includes(full)) continue;
    if (entry.isDirectory()) out.push(...(await filesUnder(full, skip)));
    else if (entry.isFile()) out.push(full);
  }
  return out;
}

/** Process ids whose command line names this archive id (the detached builder leads its own group). */
async function builderPids(archiveId: string): Promise<number[]> {
  const out: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const cmdline = await readFile(join('/proc', name, 'cmdline'), 'utf8').catch(() => '');
    if (cmdline.split('\0').includes(archiveId)) out.push(Number(name));
  }
  return out;
}

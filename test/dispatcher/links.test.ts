// Arming an archive and issuing download links: who gets a link, who does not, and what the link is.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readdirSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { makeWorld, manifest, SECRET, tokenHash, waitFor, type World } from './world.js';

let w: World;
let before: ReturnType<typeof manifest>;
const CUSTOMER = 'example.org';
let readyId: string;
const T1 = 'a'.repeat(21) + '_' + 'B'.repeat(21);
const T2 = 'c'.repeat(21) + '-' + 'D'.repeat(21);

// The dispatcher answers with a reason; the words a customer reads are the portal's (test/backup-host).
const refused = (reason: string, message: unknown = expect.any(String)) => ({ ok: false, error: { code: 'refused', reason, message } });

function createReady(world: World, customer: string): string {
  const r = world.run('archive.create', { customer, snapshot: 'daily.0' });
  expect(r.code).toBe(0);
  return r.answer.result.archiveId;
}

async function settle(world: World, customer: string, archiveId: string) {
  return waitFor('the build to settle', () => {
    const s = world.run('archive.status', { customer, archiveId }).answer.result;
    return s.state !== 'building' ? s : null;
  });
}

const linkDirs = () => readdirSync(w.linkRoot);
const md5 = (s: string) => createHash('md5').update(s).digest('base64url');

beforeAll(async () => {
  w = makeWorld();
  for (const c of [CUSTOMER, 'other.net']) {
    mkdirSync(join(w.backupRoot, c, 'daily.0'), { recursive: true });
    writeFileSync(join(w.backupRoot, c, 'daily.0', 'file.txt'), `data of ${c}\n`);
  }
  before = manifest(w.backupRoot);
  readyId = createReady(w, CUSTOMER);
  expect((await settle(w, CUSTOMER, readyId)).state).toBe('ready');
});

describe('archive.arm', () => {
  it('stores only the hash of the token, readable by root alone', () => {
    const r = w.run('archive.arm', { customer: CUSTOMER, archiveId: readyId, tokenHash: tokenHash(T1) });
    expect(r).toMatchObject({ code: 0, answer: { ok: true, result: { armed: true } } });
    const file = join(w.stateDir, 'tokens', `${readyId}.sha256`);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(spawnSync('cat', [file], { encoding: 'utf8' }).stdout).toBe(`${tokenHash(T1)}\n`);
    expect(spawnSync('grep', ['-rF', T1, w.stateDir]).status).toBe(1);
  });

  it("refuses to arm another customer's archive", () => {
    const r = w.run('archive.arm', { customer: 'other.net', archiveId: readyId, tokenHash: tokenHash(T2) });
    expect(r).toMatchObject({
      code: 1,
      answer: { ok: false, error: { code: 'not_found', reason: 'not_found', message: 'no such archive for this customer' } },
    });
  });
});

describe('link.issue', () => {
  it('issues a 60-second link bound to the client address, signed for nginx secure_link', () => {
    const t0 = Math.floor(Date.now() / 1000);
    const r = w.run(
      'link.issue',
      { customer: CUSTOMER, archiveId: readyId, token: T1, clientIp: '192.0.2.7' },
      { SSH_CONNECTION: '198.51.100.4 40000 192.0.2.1 22' },
    );
    expect(r.code).toBe(0);
    const fileName = `example.org-daily.0-${readyId.slice(0, 8)}.tar`;
    expect(r.answer).toEqual({ ok: true, result: { url: expect.any(String), expires: expect.any(Number), lifetimeSeconds: 60, fileName } });
    const { url, expires } = r.answer.result;
    expect(expires).toBeGreaterThanOrEqual(t0 + 60);
    expect(expires).toBeLessThanOrEqual(t0 + 62);
    const m = /^https:\/\/dl\.example\.net(\/dl\/([0-9a-f]{32})\/([^?]+))\?md5=([A-Za-z0-9_-]{22})&expires=(\d+)$/.exec(url)!;
    expect(m).not.toBeNull();
    const [, uri, linkId, name, sig, exp] = m;
    expect(name).toBe(fileName);
    expect(Number(exp)).toBe(expires);
    expect(sig).toBe(md5(`${expires}${uri}192.0.2.7 ${SECRET}`));
    const link = join(w.linkRoot, linkId!, fileName);
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(readlinkSync(link)).toBe(join(w.archiveRoot, `${readyId}.tar`));
    expect(statSync(join(w.linkRoot, linkId!)).mode & 0o777).toBe(0o750);
    const events = w.run('events.since', { after: 0 }).answer.result.events;
    expect(events.at(-1)).toEqual({
      seq: expect.any(Number),
      time: expect.any(String),
      type: 'link.issued',
      customer: CUSTOMER,
      archiveId: readyId,
      ip: '192.0.2.7',
      bytes: null,
      detail: `expires ${expires}`,
    });
  });

  it('signs IPv6 clients in the spelling nginx uses for $remote_addr', () => {
    const r = w.run('link.issue', { customer: CUSTOMER, archiveId: readyId, token: T1, clientIp: '2001:DB8:0:0:0:0:0:7' });
    expect(r.code).toBe(0);
    const { url, expires } = r.answer.result;
    const uri = /^https:\/\/dl\.example\.net([^?]+)/.exec(url)![1];
    expect(url).toContain(`md5=${md5(`${expires}${uri}2001:db8::7 ${SECRET}`)}&`);
  });

  it('refuses a wrong token and creates no link', () => {
    const dirs = linkDirs();
    const r = w.run('link.issue', { customer: CUSTOMER, archiveId: readyId, token: T2, clientIp: '192.0.2.7' });
    expect(r).toMatchObject({ code: 1, answer: refused('bad_token') });
    expect(linkDirs()).toEqual(dirs);
  });

  it('refuses a truncated token as a bad request', () => {
    const r = w.run('link.issue', { customer: CUSTOMER, archiveId: readyId, token: T1.slice(0, 42), clientIp: '192.0.2.7' });
    expect(r).toMatchObject({ code: 1, answer: refused('bad_request', 'bad request: invalid field token') });
  });

  it('refuses a bad client address', () => {
    for (const clientIp of ['192.0.2.300', 'fe80::1%eth0', '192.0.2.7 ', 'example.org']) {
      const r = w.run('link.issue', { customer: CUSTOMER, archiveId: readyId, token: T1, clientIp });
      expect(r.answer, clientIp).toEqual(refused('bad_request', 'bad request: invalid field clientIp'));
    }
  });

  it('accepts only the newest token after re-arming', () => {
    expect(w.run('archive.arm', { customer: CUSTOMER, archiveId: readyId, tokenHash: tokenHash(T2) }).code).toBe(0);
    expect(w.run('link.issue', { customer: CUSTOMER, archiveId: readyId, token: T1, clientIp: '192.0.2.7' }).answer).toEqual(
      refused('bad_token'),
    );
    expect(w.run('link.issue', { customer: CUSTOMER, archiveId: readyId, token: T2, clientIp: '192.0.2.7' }).code).toBe(0);
  });

  it("refuses another customer's archive id with the same answer as a missing one", () => {
    const r = w.run('link.issue', { customer: 'other.net', archiveId: readyId, token: T2, clientIp: '192.0.2.7' });
    expect(r).toMatchObject({
      code: 1,
      answer: { ok: false, error: { code: 'not_found', reason: 'not_found', message: 'no such archive for this customer' } },
    });
  });

  it('refuses a link for an archive past its retention, even before sweep removed it', () => {
    const r = w.run(
      'link.issue',
      { customer: CUSTOMER, archiveId: readyId, token: T2, clientIp: '192.0.2.7' },
      { ARCHWAY_DISPATCHER_NOW_OFFSET: String(8 * 86400) },
    );
    expect(r).toMatchObject({ code: 1, answer: refused('expired') });
  });

  it('refuses a link (and arming) for an archive that is still building', async () => {
    // A tar that never finishes keeps the archive in "building" for as long as the test needs.
    const slow = makeWorld();
    const script = join(slow.dir, 'slow-tar');
    writeFileSync(script, '#!/bin/sh\nexec sleep 60\n', { mode: 0o755 });
    writeFileSync(slow.configPath, JSON.stringify({ ...slow.config, tarPath: script }), { mode: 0o600 });
    mkdirSync(join(slow.backupRoot, CUSTOMER, 'daily.0'), { recursive: true });
    const id = createReady(slow, CUSTOMER);
    const arm = slow.run('archive.arm', { customer: CUSTOMER, archiveId: id, tokenHash: tokenHash(T1) });
    const link = slow.run('link.issue', { customer: CUSTOMER, archiveId: id, token: T1, clientIp: '192.0.2.7' });
    const state = slow.run('archive.status', { customer: CUSTOMER, archiveId: id }).answer.result.state;
    expect(slow.run('archive.cancel', { customer: CUSTOMER, archiveId: id }).answer.result.state).toBe('cancelled');
    expect(state).toBe('building');
    expect(arm.answer).toEqual(refused('not_ready'));
    expect(link.answer).toEqual(refused('not_ready'));
    expect(readdirSync(slow.linkRoot)).toEqual([]);
    expect(readdirSync(slow.archiveRoot)).toEqual([]);
  });

  it('refuses a link for a cancelled archive', async () => {
    const id = createReady(w, 'other.net');
    await settle(w, 'other.net', id);
    w.run('archive.arm', { customer: 'other.net', archiveId: id, tokenHash: tokenHash(T1) });
    expect(w.run('archive.cancel', { customer: 'other.net', archiveId: id }).answer.result.state).toBe('cancelled');
    expect(existsSync(join(w.archiveRoot, `${id}.tar`))).toBe(false);
    expect(existsSync(join(w.stateDir, 'tokens', `${id}.sha256`))).toBe(false);
    const r = w.run('link.issue', { customer: 'other.net', archiveId: id, token: T1, clientIp: '192.0.2.7' });
    expect(r.answer).toEqual(refused('not_ready'));
  });

  it('refuses a link for a failed archive', async () => {
    // A tar that exits non-zero gives a failed archive deterministically.
    const broken = makeWorld({ tarPath: '/bin/false' });
    mkdirSync(join(broken.backupRoot, CUSTOMER, 'daily.0'), { recursive: true });
    const id = createReady(broken, CUSTOMER);
    const status = await settle(broken, CUSTOMER, id);
    expect(status).toMatchObject({
      state: 'failed',
      failureReason: 'The backup changed while it was being archived; please try again.',
      sizeBytes: null,
    });
    expect(readdirSync(broken.archiveRoot)).toEqual([]);
    expect(broken.run('archive.arm', { customer: CUSTOMER, archiveId: id, tokenHash: tokenHash(T1) }).answer).toEqual(refused('not_ready'));
    const r = broken.run('link.issue', { customer: CUSTOMER, archiveId: id, token: T1, clientIp: '192.0.2.7' });
    expect(r.answer).toEqual(refused('not_ready'));
    expect(readdirSync(broken.linkRoot)).toEqual([]);
  });

  it('never writes the token to any file', () => {
    for (const t of [T1, T2]) expect(spawnSync('grep', ['-rF', t, w.dir]).status).toBe(1);
  });

  it('leaves BACKUP_ROOT byte-identical, with the same mtimes', () => {
    expect(manifest(w.backupRoot)).toEqual(before);
  });
});

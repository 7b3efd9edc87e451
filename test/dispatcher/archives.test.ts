// Asking for an archive: what the customer gets, what an attacker cannot get, and what happens on failure.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { expectedListing, parseListing, writeBigSnapshot, writeHostileSnapshot, type ExpectedEntry } from './tree.js';
import { makeWorld, manifest, sha256File, waitFor, type World } from './world.js';

let w: World;
let before: ReturnType<typeof manifest>;
const CUSTOMER = 'example.org';
const BIG = 'big.example';
const outsideSecret = 'OTHER-CUSTOMER-SECRET-7f3a';

function snapshotDir(customer: string, snapshot: string) {
  return join(w.backupRoot, customer, snapshot);
}

async function untilSettled(customer: string, archiveId: string) {
  return waitFor(
    `archive ${archiveId} to settle`,
    () => {
      const r = w.run('archive.status', { customer, archiveId });
      return r.answer?.result?.state !== 'building' ? r.answer.result : null;
    },
    60_000,
    50,
  );
}

function normalise(m: Map<string, ExpectedEntry>) {
  // Which of two hard-linked names tar stores first depends on directory order; both are the same file.
  return new Map([...m].map(([k, v]) => [k, v.type === 'h' ? { type: '-', target: null } : v]));
}

beforeAll(() => {
  w = makeWorld();
  mkdirSync(snapshotDir('other.net', 'daily.0'), { recursive: true });
  const outsideFile = join(snapshotDir('other.net', 'daily.0'), 'secret.txt');
  writeFileSync(outsideFile, outsideSecret);
  mkdirSync(snapshotDir(CUSTOMER, 'daily.0'), { recursive: true });
  writeHostileSnapshot(snapshotDir(CUSTOMER, 'daily.0'), outsideFile);
  mkdirSync(snapshotDir(CUSTOMER, '2026-11-21T03:00:00Z'));
  writeFileSync(join(snapshotDir(CUSTOMER, '2026-11-21T03:00:00Z'), 'old.txt'), 'older backup\n');
  spawnSync('touch', ['-d', '2026-11-21T03:00:00Z', snapshotDir(CUSTOMER, '2026-11-21T03:00:00Z')]);
  spawnSync('touch', ['-d', '2026-11-22T03:00:00Z', snapshotDir(CUSTOMER, 'daily.0')]);
  writeBigSnapshot(snapshotDir(BIG, 'daily.0'), 3, 192 << 20);
  before = manifest(w.backupRoot);
});

describe('backups.list', () => {
  it('lists the customer snapshots newest first with their times', () => {
    const r = w.run('backups.list', { customer: CUSTOMER });
    expect(r.code).toBe(0);
    expect(r.answer).toEqual({
      ok: true,
      result: {
        snapshots: [
          { name: 'daily.0', time: '2026-11-22T03:00:00.000Z', sizeBytes: null },
          { name: '2026-11-21T03:00:00Z', time: '2026-11-21T03:00:00.000Z', sizeBytes: null },
        ],
      },
    });
  });
});

describe('archive.create and archive.status', () => {
  let archiveId: string;

  it('builds an archive of a hostile tree that lists exactly the tree, links stored as links', async () => {
    const r = w.run('archive.create', { customer: CUSTOMER, snapshot: 'daily.0' });
    expect(r.code).toBe(0);
    expect(r.answer).toEqual({ ok: true, result: { archiveId: expect.stringMatching(/^[0-9a-f]{32}$/), state: 'building' } });
    archiveId = r.answer.result.archiveId;
    const status = await untilSettled(CUSTOMER, archiveId);
    const file = join(w.archiveRoot, `${archiveId}.tar`);
    const size = statSync(file).size;
    const listing = spawnSync('tar', ['-tvf', file, '--quoting-style=escape'], {
      encoding: 'utf8',
      env: { LC_ALL: 'C', PATH: process.env.PATH },
    });
    expect(listing.status).toBe(0);
    const listed = parseListing(listing.stdout);
    expect(normalise(listed)).toEqual(normalise(expectedListing(snapshotDir(CUSTOMER, 'daily.0'))));
    expect(status).toEqual({
      state: 'ready',
      bytesWritten: size,
      filesWritten: [...listed.values()].filter((e) => e.type !== 'd').length,
      percent: 100,
      sizeBytes: size,
      sha256: sha256File(file),
      failureReason: null,
      createdAt: expect.any(String),
      readyAt: expect.any(String),
      expiresAt: expect.any(String),
      downloadFileName: `example.org-daily.0-${archiveId.slice(0, 8)}.tar`,
    });
    expect(Date.parse(status.expiresAt) - Date.parse(status.readyAt)).toBe(7 * 86400_000);
    // The archive is readable by the nginx group only and no partial remains.
    expect(statSync(file).mode & 0o777).toBe(0o640);
    expect(readdirSync(w.archiveRoot)).toEqual([`${archiveId}.tar`]);
  });

  it('never puts content from outside the snapshot into the archive', () => {
    const bytes = readFileSync(join(w.archiveRoot, `${archiveId}.tar`));
    expect(bytes.includes(outsideSecret)).toBe(false);
    const passwd = readFileSync('/etc/passwd', 'utf8').split('\n')[0]!;
    expect(bytes.includes(passwd)).toBe(false);
  });

  it('extracts to the same bytes as the snapshot', () => {
    const out = mkdtempSync(join(w.dir, 'extract-'));
    const x = spawnSync('tar', ['-xf', join(w.archiveRoot, `${archiveId}.tar`), '-C', out]);
    expect(x.status).toBe(0);
    const pick = (m: ReturnType<typeof manifest>) =>
      new Map([...m].filter(([k]) => k !== '.').map(([k, v]) => [k, [v.type, v.content, v.size]]));
    const src = pick(manifest(snapshotDir(CUSTOMER, 'daily.0')));
    const got = pick(manifest(out));
    // Directory sizes depend on the file system; compare them by type only.
    for (const m of [src, got]) for (const [k, v] of m) if (v[0] === 'dir') m.set(k, ['dir']);
    expect(got).toEqual(src);
  });

  it('refuses another customer asking about this archive, exactly as if it did not exist', () => {
    for (const action of ['archive.status', 'archive.cancel']) {
      const r = w.run(action, { customer: 'other.net', archiveId });
      expect(r.code).toBe(1);
      expect(r.answer).toEqual({
        ok: false,
        error: { code: 'not_found', reason: 'not_found', message: 'no such archive for this customer' },
      });
    }
    const missing = w.run('archive.status', { customer: CUSTOMER, archiveId: 'f'.repeat(32) });
    expect(missing.answer).toEqual({
      ok: false,
      error: { code: 'not_found', reason: 'not_found', message: 'no such archive for this customer' },
    });
  });

  it('refuses to start when the archive disk has less free space than the snapshot', () => {
    const ids = readdirSync(join(w.stateDir, 'archives'));
    const events = w.run('events.since', { after: 0 }).answer.result.events;
    // tar starts while the size is still being estimated; the refusal must undo that start completely.
    const r = w.run('archive.create', { customer: CUSTOMER, snapshot: 'daily.0' }, { ARCHWAY_DISPATCHER_FAKE_FREE_BYTES: '1000' });
    expect(r.code).toBe(1);
    expect(r.answer).toEqual({
      ok: false,
      error: { code: 'refused', reason: 'no_space', message: 'not enough free space in the archive root for this snapshot' },
    });
    expect(readdirSync(join(w.stateDir, 'archives'))).toEqual(ids);
    expect(readdirSync(w.archiveRoot)).toEqual([`${archiveId}.tar`]);
    expect(w.run('events.since', { after: 0 }).answer.result.events).toEqual(events);
    expect(existsSync(join(w.stateDir, 'locks', `${CUSTOMER}.build`))).toBe(false);
    // No tar of this snapshot is left running (pgrep exits 1 when nothing matches).
    expect(spawnSync('pgrep', ['-f', '--', `--directory ${join(w.backupRoot, CUSTOMER)}`]).status).toBe(1);
  });

  it('shows progress moving on a bigger tree, then the final size and hash', async () => {
    const r = w.run('archive.create', { customer: BIG, snapshot: 'daily.0' });
    expect(r.code).toBe(0);
    const id = r.answer.result.archiveId;
    const samples: { bytesWritten: number; percent: number | null }[] = [];
    let final: any;
    for (;;) {
      const s = w.run('archive.status', { customer: BIG, archiveId: id }).answer.result;
      if (s.state !== 'building') {
        final = s;
        break;
      }
      samples.push({ bytesWritten: s.bytesWritten, percent: s.percent });
    }
    const moving = samples.filter((s) => s.bytesWritten > 0);
    expect(moving.length).toBeGreaterThanOrEqual(2);
    for (let i = 1; i < moving.length; i++) expect(moving[i]!.bytesWritten).toBeGreaterThanOrEqual(moving[i - 1]!.bytesWritten);
    expect(moving.at(-1)!.bytesWritten).toBeGreaterThan(moving[0]!.bytesWritten);
    expect(moving.some((s) => s.percent !== null && s.percent > 0 && s.percent < 100)).toBe(true);
    const file = join(w.archiveRoot, `${id}.tar`);
    expect(final).toMatchObject({
      state: 'ready',
      percent: 100,
      filesWritten: 3,
      sizeBytes: statSync(file).size,
      bytesWritten: statSync(file).size,
      sha256: sha256File(file),
    });
    spawnSync('rm', ['-f', file]);
  });

  it('refuses a second build for the same customer while one runs, and allows one after cancelling', () => {
    const first = w.run('archive.create', { customer: BIG, snapshot: 'daily.0' });
    expect(first.code).toBe(0);
    const second = w.run('archive.create', { customer: BIG, snapshot: 'daily.0' });
    expect(second.code).toBe(1);
    expect(second.answer).toEqual({
      ok: false,
      error: { code: 'refused', reason: 'build_running', message: 'a build for this customer is still running' },
    });
    const id = first.answer.result.archiveId;
    const cancel = w.run('archive.cancel', { customer: BIG, archiveId: id });
    expect(cancel).toMatchObject({ code: 0, answer: { ok: true, result: { state: 'cancelled' } } });
    expect(existsSync(join(w.archiveRoot, `${id}.tar.partial`))).toBe(false);
    expect(existsSync(join(w.archiveRoot, `${id}.tar`))).toBe(false);
    expect(w.run('archive.status', { customer: BIG, archiveId: id }).answer.result).toMatchObject({
      state: 'cancelled',
      sizeBytes: null,
      sha256: null,
    });
    // Cancelling again changes nothing.
    expect(w.run('archive.cancel', { customer: BIG, archiveId: id }).answer).toEqual({ ok: true, result: { state: 'cancelled' } });
    const third = w.run('archive.create', { customer: BIG, snapshot: 'daily.0' });
    expect(third.code).toBe(0);
    expect(w.run('archive.cancel', { customer: BIG, archiveId: third.answer.result.archiveId }).answer.result.state).toBe('cancelled');
  });

  it('marks a build failed when its builder is killed, and sweep leaves no partial file', async () => {
    const r = w.run('archive.create', { customer: BIG, snapshot: 'daily.0' });
    const id = r.answer.result.archiveId;
    const lock = JSON.parse(readFileSync(join(w.stateDir, 'locks', `${BIG}.build`), 'utf8'));
    expect(lock.archiveId).toBe(id);
    await waitFor('the partial file', () => existsSync(join(w.archiveRoot, `${id}.tar.partial`)), 10_000, 5);
    process.kill(-lock.pid, 'SIGKILL');
    await waitFor(
      'the builder to be gone',
      () => !existsSync(`/proc/${lock.pid}/stat`) || readFileSync(`/proc/${lock.pid}/stat`, 'utf8').includes(') Z '),
      10_000,
    );
    const status = w.run('archive.status', { customer: BIG, archiveId: id });
    expect(status.answer.result).toMatchObject({
      state: 'failed',
      failureReason: 'The archive builder stopped unexpectedly.',
      sizeBytes: null,
      sha256: null,
      percent: null,
    });
    const sweep = w.run('sweep', '');
    expect(sweep.code).toBe(0);
    expect(readdirSync(w.archiveRoot).filter((n) => n.startsWith(id))).toEqual([]);
    // A new build may start: the dead builder's lock is stale.
    const again = w.run('archive.create', { customer: BIG, snapshot: 'daily.0' });
    expect(again.code).toBe(0);
    w.run('archive.cancel', { customer: BIG, archiveId: again.answer.result.archiveId });
  });

  it('notices a dead builder in sweep too, without anyone asking for the status', async () => {
    const r = w.run('archive.create', { customer: BIG, snapshot: 'daily.0' });
    const id = r.answer.result.archiveId;
    const lock = JSON.parse(readFileSync(join(w.stateDir, 'locks', `${BIG}.build`), 'utf8'));
    await waitFor('the partial file', () => existsSync(join(w.archiveRoot, `${id}.tar.partial`)), 10_000, 5);
    process.kill(-lock.pid, 'SIGKILL');
    await waitFor(
      'the builder to be gone',
      () => !existsSync(`/proc/${lock.pid}/stat`) || readFileSync(`/proc/${lock.pid}/stat`, 'utf8').includes(') Z '),
      10_000,
    );
    const sweep = w.run('sweep', '');
    expect(sweep.answer.result).toMatchObject({ buildsFailed: 1 });
    expect(readdirSync(w.archiveRoot).filter((n) => n.startsWith(id))).toEqual([]);
    expect(w.run('archive.status', { customer: BIG, archiveId: id }).answer.result.state).toBe('failed');
  });

  it('archive.list names the live archives of the one customer asked, newest first, never a dead build or an expired one', async () => {
    const small = '2026-11-21T03:00:00Z';
    const ready = w.run('archive.create', { customer: CUSTOMER, snapshot: small }).answer.result.archiveId;
    expect((await untilSettled(CUSTOMER, ready)).state).toBe('ready');
    const listed = w.run('archive.list', { customer: CUSTOMER });
    expect(listed.code).toBe(0);
    const archives = listed.answer.result.archives as Array<{ archiveId: string; snapshot: string; state: string; createdAt: string }>;
    expect(archives[0]).toEqual({ archiveId: ready, snapshot: small, state: 'ready', createdAt: expect.any(String) });
    expect(archives.every((a) => a.state === 'ready' || a.state === 'building')).toBe(true);
    expect(archives.map((a) => a.createdAt)).toEqual(
      archives
        .map((a) => a.createdAt)
        .sort()
        .reverse(),
    );

    // A build whose builder died is reconciled as failed before it could be listed.
    const dead = w.run('archive.create', { customer: BIG, snapshot: 'daily.0' }).answer.result.archiveId;
    expect(w.run('archive.list', { customer: BIG }).answer.result.archives).toContainEqual(
      expect.objectContaining({ archiveId: dead, state: 'building' }),
    );
    const lock = JSON.parse(readFileSync(join(w.stateDir, 'locks', `${BIG}.build`), 'utf8'));
    process.kill(-lock.pid, 'SIGKILL');
    await waitFor(
      'the builder to be gone',
      () => !existsSync(`/proc/${lock.pid}/stat`) || readFileSync(`/proc/${lock.pid}/stat`, 'utf8').includes(') Z '),
      10_000,
    );
    const afterDeath = w.run('archive.list', { customer: BIG }).answer.result.archives as Array<{ archiveId: string; state: string }>;
    expect(afterDeath.map((a) => a.archiveId)).not.toContain(dead);
    expect(afterDeath.every((a) => a.state === 'ready')).toBe(true);
    expect(w.run('archive.status', { customer: BIG, archiveId: dead }).answer.result.state).toBe('failed');

    // Past the retention (7 days) a ready archive is no longer live, even before sweep ran.
    const later = w.run('archive.list', { customer: CUSTOMER }, { ARCHWAY_DISPATCHER_NOW_OFFSET: String(8 * 86_400) });
    expect(later.answer.result.archives.map((a: { archiveId: string }) => a.archiveId)).not.toContain(ready);
    expect(w.run('archive.list', { customer: 'other.net' }).answer).toEqual({ ok: true, result: { archives: [] } });
  });

  it('refuses to start a build when the nginx group it must hand the archive to does not exist', () => {
    const broken = makeWorld();
    writeFileSync(broken.configPath, JSON.stringify({ ...broken.config, nginxGroup: 'no-such-group-archway' }), { mode: 0o600 });
    mkdirSync(join(broken.backupRoot, CUSTOMER, 'daily.0'), { recursive: true });
    const r = broken.run('archive.create', { customer: CUSTOMER, snapshot: 'daily.0' });
    expect(r.code).toBe(2);
    expect(r.answer).toEqual({
      ok: false,
      error: { code: 'internal', reason: 'misconfigured', message: 'the backup host is not configured correctly; see the call log' },
    });
    expect(readdirSync(broken.archiveRoot)).toEqual([]);
    expect(broken.run('events.since', { after: 0 }).answer.result.events).toEqual([]);
  });

  it('tells the customer the disk is full when tar runs out of space, and keeps no partial file', async () => {
    const full = makeWorld();
    const fakeTar = join(full.dir, 'tar-disk-full');
    // What GNU tar prints and returns when a write fails with ENOSPC.
    writeFileSync(
      fakeTar,
      '#!/bin/sh\nprintf "tar: -: Cannot write: No space left on device\\ntar: Error is not recoverable: exiting now\\n" >&2\nexit 2\n',
      { mode: 0o755 },
    );
    writeFileSync(full.configPath, JSON.stringify({ ...full.config, tarPath: fakeTar }), { mode: 0o600 });
    mkdirSync(join(full.backupRoot, CUSTOMER, 'daily.0'), { recursive: true });
    const id = full.run('archive.create', { customer: CUSTOMER, snapshot: 'daily.0' }).answer.result.archiveId;
    const status = await waitFor('the failure', () => {
      const s = full.run('archive.status', { customer: CUSTOMER, archiveId: id }).answer.result;
      return s.state !== 'building' ? s : null;
    });
    expect(status).toMatchObject({
      state: 'failed',
      failureReason: 'The backup host ran out of disk space while building the archive.',
      sizeBytes: null,
      sha256: null,
    });
    expect(readdirSync(full.archiveRoot)).toEqual([]);
    const events = full.run('events.since', { after: 0 }).answer.result.events;
    expect(events.map((e: { type: string }) => e.type)).toEqual(['archive.requested', 'archive.failed']);
  });

  it('records every step as an event', () => {
    const r = w.run('events.since', { after: 0 });
    const types = r.answer.result.events.map((e: { type: string }) => e.type);
    expect(types).toContain('archive.requested');
    expect(types).toContain('archive.ready');
    expect(types).toContain('archive.cancelled');
    expect(types).toContain('archive.failed');
  });

  it('leaves BACKUP_ROOT byte-identical, with the same mtimes', () => {
    expect(manifest(w.backupRoot)).toEqual(before);
  });
});

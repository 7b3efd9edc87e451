// Housekeeping and the event feed: sweep removes only generated data, events come in order without gaps.
import { spawn } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readdirSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { BUNDLE, makeWorld, manifest, tokenHash, waitFor, type World } from './world.js';

let w: World;
let before: ReturnType<typeof manifest>;
const CUSTOMER = 'example.org';
const TOKEN = 'S'.repeat(43);
const DAY = 86400;

async function readyArchive(): Promise<string> {
  const id = w.run('archive.create', { customer: CUSTOMER, snapshot: 'daily.0' }).answer.result.archiveId;
  await waitFor('ready', () => w.run('archive.status', { customer: CUSTOMER, archiveId: id }).answer.result.state === 'ready');
  expect(w.run('archive.arm', { customer: CUSTOMER, archiveId: id, tokenHash: tokenHash(TOKEN) }).code).toBe(0);
  return id;
}

const allEvents = () => w.run('events.since', { after: 0 }).answer.result.events as { seq: number; type: string; archiveId: string }[];

beforeAll(() => {
  w = makeWorld({ linkTtlSeconds: 60, linkGraceSeconds: 300, archiveRetentionDays: 7 });
  mkdirSync(join(w.backupRoot, CUSTOMER, 'daily.0'), { recursive: true });
  writeFileSync(join(w.backupRoot, CUSTOMER, 'daily.0', 'f.txt'), 'x');
  before = manifest(w.backupRoot);
});

describe('sweep', () => {
  it('keeps a link during its grace period and removes it afterwards, recording that it expired unused', async () => {
    const id = await readyArchive();
    const r = w.run('link.issue', { customer: CUSTOMER, archiveId: id, token: TOKEN, clientIp: '192.0.2.7' });
    const linkId = new URL(r.answer.result.url).pathname.split('/')[2]!;
    expect(w.run('sweep', '', { ARCHWAY_DISPATCHER_NOW_OFFSET: '300' }).answer.result.linksRemoved).toBe(0);
    expect(existsSync(join(w.linkRoot, linkId))).toBe(true);
    const swept = w.run('sweep', '', { ARCHWAY_DISPATCHER_NOW_OFFSET: '361' });
    expect(swept).toMatchObject({
      code: 0,
      answer: { ok: true, result: { linksRemoved: 1, archivesExpired: 0, partialsRemoved: 0, buildsFailed: 0 } },
    });
    expect(existsSync(join(w.linkRoot, linkId))).toBe(false);
    expect(allEvents().at(-1)).toMatchObject({ type: 'link.expired', archiveId: id, ip: '192.0.2.7' });
    // The record stays while the archive exists: nginx logs a long download only when it ends.
    expect(existsSync(join(w.stateDir, 'links', `${linkId}.json`))).toBe(true);
    expect(w.run('sweep', '', { ARCHWAY_DISPATCHER_NOW_OFFSET: '400' }).answer.result.linksRemoved).toBe(0);
    expect(allEvents().filter((e) => e.type === 'link.expired')).toHaveLength(1);
    w.run('archive.cancel', { customer: CUSTOMER, archiveId: id });
    w.run('sweep', '', { ARCHWAY_DISPATCHER_NOW_OFFSET: '400' });
    expect(existsSync(join(w.stateDir, 'links', `${linkId}.json`))).toBe(false);
  });

  it('expires archives past retention: file and token hash gone, status says expired', async () => {
    const id = await readyArchive();
    expect(w.run('sweep', '', { ARCHWAY_DISPATCHER_NOW_OFFSET: String(6 * DAY) }).answer.result.archivesExpired).toBe(0);
    const swept = w.run('sweep', '', { ARCHWAY_DISPATCHER_NOW_OFFSET: String(7 * DAY + 10) });
    expect(swept.answer.result.archivesExpired).toBeGreaterThanOrEqual(1);
    expect(existsSync(join(w.archiveRoot, `${id}.tar`))).toBe(false);
    expect(existsSync(join(w.stateDir, 'tokens', `${id}.sha256`))).toBe(false);
    expect(w.run('archive.status', { customer: CUSTOMER, archiveId: id }).answer.result).toMatchObject({ state: 'expired', percent: 100 });
    const link = w.run('link.issue', { customer: CUSTOMER, archiveId: id, token: TOKEN, clientIp: '192.0.2.7' });
    expect(link.answer).toEqual({ ok: false, error: { code: 'refused', reason: 'expired', message: 'the archive is past its retention' } });
    expect(
      allEvents()
        .filter((e) => e.type === 'archive.expired')
        .map((e) => e.archiveId),
    ).toContain(id);
  });

  it('removes stray partial files and old unrecorded link directories, and leaves files that are not its own', () => {
    const stray = `${'d'.repeat(32)}.tar.partial`;
    writeFileSync(join(w.archiveRoot, stray), 'half an archive');
    writeFileSync(join(w.archiveRoot, 'README'), 'operator notes');
    const orphan = join(w.linkRoot, 'c'.repeat(32));
    mkdirSync(orphan);
    // A link directory pointing into BACKUP_ROOT must be removed without following the link.
    symlinkSync(join(w.backupRoot, CUSTOMER), join(orphan, 'backup.tar'));
    const old = Date.now() / 1000 - 3600;
    utimesSync(orphan, old, old);
    mkdirSync(join(w.linkRoot, 'not-a-link-dir'));
    const r = w.run('sweep', '');
    expect(r.code).toBe(0);
    expect(r.answer.result.partialsRemoved).toBe(1);
    expect(readdirSync(w.archiveRoot)).not.toContain(stray);
    expect(readdirSync(w.archiveRoot)).toContain('README');
    expect(existsSync(orphan)).toBe(false);
    expect(existsSync(join(w.linkRoot, 'not-a-link-dir'))).toBe(true);
  });

  it('never changes BACKUP_ROOT', () => {
    expect(manifest(w.backupRoot)).toEqual(before);
  });
});

describe('events.since', () => {
  it('numbers events from concurrent calls without gaps or duplicates', async () => {
    const id = await readyArchive();
    const runs = Array.from(
      { length: 16 },
      () =>
        new Promise<number>((resolve) => {
          const p = spawn(process.execPath, [BUNDLE, 'archive.arm'], {
            env: { PATH: process.env.PATH, ARCHWAY_DISPATCHER_CONFIG: w.configPath },
            stdio: ['pipe', 'ignore', 'ignore'],
          });
          p.on('exit', (code) => resolve(code ?? -1));
          p.stdin.end(JSON.stringify({ customer: CUSTOMER, archiveId: id, tokenHash: tokenHash(TOKEN) }));
        }),
    );
    expect(await Promise.all(runs)).toEqual(Array(16).fill(0));
    const seqs = allEvents().map((e) => e.seq);
    expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1));
  });

  it('pages with a limit, and lastSeq is always safe to pass back as after', () => {
    const all = allEvents();
    const paged: unknown[] = [];
    let after = 0;
    for (;;) {
      const r = w.run('events.since', { after, limit: 7 });
      expect(r.code).toBe(0);
      const { events, lastSeq } = r.answer.result;
      paged.push(...events);
      if (events.length === 0) {
        expect(lastSeq).toBe(all.at(-1)!.seq);
        break;
      }
      expect(lastSeq).toBe(events.at(-1).seq);
      after = lastSeq;
    }
    expect(paged).toEqual(all);
  });

  it('answers an empty list with the newest seq when nothing is new', () => {
    const newest = allEvents().at(-1)!.seq;
    expect(w.run('events.since', { after: newest + 100 }).answer).toEqual({ ok: true, result: { events: [], lastSeq: newest } });
  });

  it('continues without a gap after a torn last line (a crash mid-write)', async () => {
    const newest = allEvents().at(-1)!.seq;
    appendFileSync(join(w.stateDir, 'events.log'), '{"seq":99999,"time":"2026-');
    await readyArchive();
    const events = allEvents();
    expect(events.map((e) => e.seq)).toEqual(Array.from({ length: events.length }, (_, i) => i + 1));
    expect(events.at(-1)!.seq).toBeGreaterThan(newest);
  });

  it('finds the events after any seq in a long log with torn and foreign lines, exactly as a full read would', () => {
    const long = makeWorld();
    const lines: string[] = [];
    const expected: { seq: number }[] = [];
    for (let seq = 1; seq <= 3000; seq++) {
      const ev = {
        seq,
        time: '2026-11-22T10:00:00.000Z',
        type: 'link.issued',
        customer: CUSTOMER,
        archiveId: 'a'.repeat(32),
        ip: '192.0.2.1',
        bytes: null,
        detail: 'x'.repeat(seq % 97),
      };
      lines.push(JSON.stringify(seq % 500 === 0 ? { ...ev, src: { ino: 1, end: seq } } : ev));
      expected.push(ev);
      // A crash mid-write leaves a torn line; the next event starts on a fresh line.
      if (seq % 701 === 0) lines.push('{"seq":' + String(seq + 1) + ',"time":"2026-');
      if (seq % 997 === 0) lines.push('not an event');
    }
    mkdirSync(long.stateDir, { recursive: true, mode: 0o700 });
    writeFileSync(join(long.stateDir, 'events.log'), `${lines.join('\n')}\n`, { mode: 0o600 });
    for (const [after, limit] of [
      [0, 5],
      [1, 3],
      [499, 2],
      [500, 1],
      [700, 3],
      [701, 4],
      [996, 2],
      [1500, 1000],
      [2999, 10],
      [3000, 10],
      [4000, 10],
    ] as const) {
      const r = long.run('events.since', { after, limit });
      expect(r.code).toBe(0);
      const want = expected.filter((e) => e.seq > after).slice(0, limit);
      expect(r.answer.result.events, `after ${after}`).toEqual(want);
      expect(r.answer.result.lastSeq, `after ${after}`).toBe(want.length > 0 ? want.at(-1)!.seq : 3000);
    }
  });

  it('refuses bad paging values', () => {
    for (const req of [{ after: -1 }, { after: '0' }, { after: 0, limit: 0 }, { after: 0, limit: 1001 }, {}]) {
      expect(w.run('events.since', req).code, JSON.stringify(req)).toBe(1);
    }
  });
});

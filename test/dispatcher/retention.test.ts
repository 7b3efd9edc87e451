// Retention on the backup host: after sweep, no client address older than ipRetentionDays is left on its disk.
import type { ChildProcess } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeWorld, tokenHash, waitFor, type World } from './world.js';

const CUSTOMER = 'example.org';
const TOKEN = 'R'.repeat(43);
const DAY = 86400;
// Addresses used 40 days ago (past the default 30) and 2 days ago (within it).
const OLD = { client: '192.0.2.41', caller: '198.51.100.41', downloader: '192.0.2.42' };
const NEW = { client: '192.0.2.51', caller: '198.51.100.51', downloader: '192.0.2.52' };

interface Event {
  seq: number;
  time: string;
  type: string;
  ip: string | null;
  detail: string | null;
}

function world(overrides: Record<string, unknown> = {}): World {
  const w = makeWorld(overrides);
  mkdirSync(join(w.backupRoot, CUSTOMER, 'daily.0'), { recursive: true });
  writeFileSync(join(w.backupRoot, CUSTOMER, 'daily.0', 'f.txt'), 'x');
  return w;
}

const allEvents = (w: World): Event[] => w.run('events.since', { after: 0 }).answer.result.events as Event[];

/** Every file a thief of the disk would read: state, logs and rotated logs, as raw bytes. */
function diskText(w: World): string {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const full = join(dir, name);
      if (statSync(full).isDirectory()) walk(full);
      else out.push(readFileSync(full).toString('latin1'));
    }
  };
  walk(w.stateDir);
  walk(join(w.dir, 'nginx'));
  return out.join('\n');
}

function stopped(p: ChildProcess): Promise<void> {
  return new Promise((resolve) => (p.exitCode !== null || p.signalCode !== null ? resolve() : p.once('exit', () => resolve())));
}

/** One customer's archive, link issued over SSH and downloaded, all at `offsetDays` from now on the dispatcher's clock. */
async function downloadAt(w: World, offsetDays: number, who: typeof OLD): Promise<void> {
  const clock = { ARCHWAY_DISPATCHER_NOW_OFFSET: String(offsetDays * DAY) };
  const ssh = { ...clock, SSH_CONNECTION: `${who.caller} 50000 127.0.0.1 22` };
  const id = w.run('archive.create', { customer: CUSTOMER, snapshot: 'daily.0' }, ssh).answer.result.archiveId as string;
  await waitFor('ready', () => w.run('archive.status', { customer: CUSTOMER, archiveId: id }, clock).answer.result.state === 'ready');
  expect(w.run('archive.arm', { customer: CUSTOMER, archiveId: id, tokenHash: tokenHash(TOKEN) }, ssh).code).toBe(0);
  const link = w.run('link.issue', { customer: CUSTOMER, archiveId: id, token: TOKEN, clientIp: who.client }, ssh).answer.result;
  const size = w.run('archive.status', { customer: CUSTOMER, archiveId: id }, clock).answer.result.sizeBytes as number;
  const time = new Date(Date.now() + offsetDays * DAY * 1000).toISOString();
  const uri = new URL(link.url as string).pathname;
  appendFileSync(
    w.downloadLog,
    `${JSON.stringify({ time, remote_addr: who.downloader, uri, status: 200, bytes: size, completion: 'OK', request_time: 0.1 })}\n`,
  );
  // watch reads the line on the same clock, so the download event carries that day's time.
  const watch = w.start(['watch'], clock);
  await waitFor('download recorded', () => allEvents(w).some((e) => e.type === 'download.completed' && e.ip === who.downloader));
  await waitFor('watch position saved', () => {
    const saved = JSON.parse(readFileSync(join(w.stateDir, 'watch.json'), 'utf8')) as { offset: number };
    return saved.offset === statSync(w.downloadLog).size;
  });
  watch.kill('SIGTERM');
  await stopped(watch);
}

/** An event log of `n` old link.issued events, written as the dispatcher writes them, to make a sweep take a while. */
function seedOldEvents(w: World, n: number): void {
  mkdirSync(w.stateDir, { recursive: true, mode: 0o700 });
  const time = new Date(Date.now() - 40 * DAY * 1000).toISOString();
  const lines: string[] = [];
  for (let seq = 1; seq <= n; seq++) {
    const ev = { seq, time, type: 'link.issued', customer: CUSTOMER, archiveId: 'a'.repeat(32), ip: OLD.client, bytes: null, detail: 'x' };
    lines.push(JSON.stringify(ev));
  }
  writeFileSync(join(w.stateDir, 'events.log'), `${lines.join('\n')}\n`, { mode: 0o600 });
}

const expectGapFree = (events: Event[]) => expect(events.map((e) => e.seq)).toEqual(Array.from({ length: events.length }, (_, i) => i + 1));

describe('sweep and client addresses', () => {
  it('leaves no address older than the period in the event, call and download logs, and keeps newer ones', async () => {
    const w = world();
    await downloadAt(w, -40, OLD);
    await downloadAt(w, -2, NEW);
    const dir = join(w.dir, 'nginx');
    // Older rotations logrotate left: one past the period, one within it.
    writeFileSync(join(dir, 'download.log.3.gz'), `gzip of lines from ${OLD.downloader}`);
    writeFileSync(join(dir, 'download.log.2'), `lines from ${NEW.downloader}\n`);
    utimesSync(join(dir, 'download.log.3.gz'), Date.now() / 1000 - 35 * DAY, Date.now() / 1000 - 35 * DAY);
    utimesSync(join(dir, 'download.log.2'), Date.now() / 1000 - 3 * DAY, Date.now() / 1000 - 3 * DAY);
    const before = allEvents(w);
    const cutoff = Date.now() - 30 * DAY * 1000;
    const oldWithDetails = before.filter((e) => Date.parse(e.time) < cutoff && (e.ip !== null || e.detail !== null));
    expect(oldWithDetails.map((e) => e.ip)).toContain(OLD.client);
    for (const ip of [...Object.values(OLD), ...Object.values(NEW)]) expect(diskText(w)).toContain(ip);

    const swept = w.run('sweep');
    expect(swept.code).toBe(0);
    expect(swept.answer.result).toMatchObject({
      eventsAnonymised: oldWithDetails.length,
      callLinesRemoved: expect.any(Number),
      downloadLinesBlanked: 1,
      downloadLogsRemoved: 1,
    });
    expect(swept.answer.result.callLinesRemoved).toBeGreaterThanOrEqual(4);

    const disk = diskText(w);
    for (const ip of Object.values(OLD)) expect(disk).not.toContain(ip);
    for (const ip of Object.values(NEW)) expect(disk).toContain(ip);
    expect(existsSync(join(dir, 'download.log.3.gz'))).toBe(false);
    expect(existsSync(join(dir, 'download.log.2'))).toBe(true);

    // The portal's sync still sees every event once, in order, with only the old ones' addresses and details gone.
    const after = allEvents(w);
    expectGapFree(after);
    expect(after.slice(0, before.length)).toEqual(before.map((e) => (Date.parse(e.time) < cutoff ? { ...e, ip: null, detail: null } : e)));
    // The 40-day-old archive was past its own retention too, recorded after what was there.
    expect(after.slice(before.length)).toEqual([expect.objectContaining({ type: 'archive.expired', seq: before.length + 1 })]);
    expect(after.filter((e) => e.ip === NEW.client || e.ip === NEW.downloader).length).toBeGreaterThanOrEqual(2);
    const paged = w.run('events.since', { after: 3, limit: 2 }).answer.result;
    expect(paged.events.map((e: Event) => e.seq)).toEqual([4, 5]);

    // Nothing left to do: a second sweep changes nothing, and watch still goes on from where it was.
    const snapshot = diskText(w);
    expect(w.run('sweep').answer.result).toMatchObject({ eventsAnonymised: 0, downloadLinesBlanked: 0, downloadLogsRemoved: 0 });
    expect(diskText(w).replace(/\{"time":"[^"]+","action":"sweep".*\n/g, '')).toBe(
      snapshot.replace(/\{"time":"[^"]+","action":"sweep".*\n/g, ''),
    );
  });

  it('takes the period from ipRetentionDays', async () => {
    const w = world({ ipRetentionDays: 1 });
    await downloadAt(w, -2, NEW);
    const swept = w.run('sweep').answer.result;
    expect(swept.eventsAnonymised).toBeGreaterThanOrEqual(3);
    // The link record stays for late log lines while its archive exists, without the address.
    expect(swept.linkIpsRemoved).toBe(1);
    for (const ip of Object.values(NEW)) expect(diskText(w)).not.toContain(ip);
    const bad = makeWorld({ ipRetentionDays: 0 });
    const refused = bad.run('ping', {});
    expect(refused.answer).toMatchObject({ ok: false });
    expect(refused.stderr).toContain('ipRetentionDays must be an integer from 1 to 3650');
  });

  // A log of hundreds of thousands of lines: about 10 s alone, longer with the whole suite on the machine.
  it('loses no event or call line appended while it rewrites a large log', async () => {
    const w = world();
    const n = 500_000;
    seedOldEvents(w, n);
    const id = (() => {
      const r = w.run('archive.create', { customer: CUSTOMER, snapshot: 'daily.0' });
      return r.answer.result.archiveId as string;
    })();
    await waitFor('ready', () => w.run('archive.status', { customer: CUSTOMER, archiveId: id }).answer.result.state === 'ready');
    const sweep = w.start(['sweep']);
    // The temp copy exists only while the sweep rewrites the event log: appends from here on race it.
    await waitFor('sweep rewriting', () => existsSync(join(w.stateDir, 'events.log.sweep-tmp')), 15_000, 2);
    const arms = 4;
    for (let i = 0; i < arms; i++)
      expect(w.run('archive.arm', { customer: CUSTOMER, archiveId: id, tokenHash: tokenHash(TOKEN) }).code).toBe(0);
    // Still there: the appends went to the log the sweep had not yet replaced, so its copy must carry them.
    const raced = existsSync(join(w.stateDir, 'events.log.sweep-tmp'));
    await stopped(sweep);
    expect(sweep.exitCode).toBe(0);
    expect(raced, 'the sweep ended before the appends: make the seeded log larger').toBe(true);
    const log = readFileSync(join(w.stateDir, 'events.log'), 'utf8').trimEnd().split('\n');
    const events = log.map((l) => JSON.parse(l) as Event);
    expectGapFree(events);
    expect(events.filter((e) => e.type === 'archive.armed')).toHaveLength(arms);
    expect(events.slice(0, n).every((e) => e.ip === null && e.detail === null)).toBe(true);
    const calls = readFileSync(join(w.stateDir, 'dispatcher.log'), 'utf8').split('\n');
    expect(calls.filter((l) => l.includes('"action":"archive.arm"'))).toHaveLength(arms);
  }, 180_000);

  // A log of hundreds of thousands of lines: about 10 s alone, longer with the whole suite on the machine.
  it('killed midway, leaves the log as it was, and the next sweep finishes the work', async () => {
    const w = world();
    seedOldEvents(w, 300_000);
    const path = join(w.stateDir, 'events.log');
    const original = readFileSync(path);
    const sweep = w.start(['sweep']);
    await waitFor('sweep rewriting', () => existsSync(`${path}.sweep-tmp`), 15_000, 2);
    sweep.kill('SIGKILL');
    await stopped(sweep);
    expect(readFileSync(path).equals(original)).toBe(true);
    expect(existsSync(`${path}.sweep-tmp`)).toBe(true);
    const next = w.run('sweep');
    expect(next.answer.result.eventsAnonymised).toBe(300_000);
    expect(existsSync(`${path}.sweep-tmp`)).toBe(false);
    expect(readFileSync(path, 'utf8')).not.toContain(OLD.client);
    const page = w.run('events.since', { after: 299_998 }).answer.result;
    expect(page).toEqual({
      events: [expect.objectContaining({ seq: 299_999, ip: null }), expect.objectContaining({ seq: 300_000 })],
      lastSeq: 300_000,
    });
  }, 180_000);
});

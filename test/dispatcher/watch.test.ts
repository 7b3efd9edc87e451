// Following nginx's download log: links vanish at first use, downloads count once, rotation and restarts lose nothing.
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { makeWorld, manifest, tokenHash, waitFor, type World } from './world.js';

let w: World;
let before: ReturnType<typeof manifest>;
let watcher: ChildProcess | null = null;
const CUSTOMER = 'example.org';
const TOKEN = 'W'.repeat(43);

interface Ready {
  id: string;
  size: number;
}

async function readyArchive(): Promise<Ready> {
  const id = w.run('archive.create', { customer: CUSTOMER, snapshot: 'daily.0' }).answer.result.archiveId;
  const status = await waitFor('ready', () => {
    const s = w.run('archive.status', { customer: CUSTOMER, archiveId: id }).answer.result;
    return s.state === 'ready' ? s : null;
  });
  expect(w.run('archive.arm', { customer: CUSTOMER, archiveId: id, tokenHash: tokenHash(TOKEN) }).code).toBe(0);
  return { id, size: status.sizeBytes };
}

function issue(id: string, clientIp = '192.0.2.7'): { uri: string; linkId: string } {
  const r = w.run('link.issue', { customer: CUSTOMER, archiveId: id, token: TOKEN, clientIp });
  expect(r.code).toBe(0);
  const uri = new URL(r.answer.result.url).pathname;
  return { uri, linkId: uri.split('/')[2]! };
}

function logLine(uri: string, status: number, bytes: number, completion: string, remote = '192.0.2.7', contentRange = ''): string {
  const line = { time: '2026-11-22T10:00:00+00:00', remote_addr: remote, uri, status, bytes, completion, request_time: 1.5 };
  return `${JSON.stringify({ ...line, content_range: contentRange })}\n`;
}

/** A 206 answer for bytes first..last of the archive, of which `bytes` were sent. */
function rangeLine(uri: string, a: Ready, first: number, last: number, bytes = last - first + 1, completion = 'OK'): string {
  return logLine(uri, 206, bytes, completion, '192.0.2.7', `bytes ${first}-${last}/${a.size}`);
}

function archiveState(id: string): string {
  return w.run('archive.status', { customer: CUSTOMER, archiveId: id }).answer.result.state;
}

function downloadEvents() {
  return w.run('events.since', { after: 0 }).answer.result.events.filter((e: { type: string }) => e.type.startsWith('download.'));
}

/**
 * Appends a line for a link that does not exist and waits until watch notes it in the call log:
 * watch reads in order, so every line before it has then been handled. Negative checks stand on it.
 */
async function sentinel(): Promise<void> {
  const linkId = randomBytes(16).toString('hex');
  appendFileSync(w.downloadLog, logLine(`/dl/${linkId}/sentinel.tar`, 200, 1, ''));
  await waitFor('watch to reach the sentinel line', () =>
    readFileSync(join(w.stateDir, 'dispatcher.log'), 'utf8').includes(`request for unknown link ${linkId}`),
  );
}

/**
 * A ready archive's link, one download line that watch handles, then SIGKILL: what the crash tests
 * start from, with the event count and the saved position from before the line.
 */
async function downloadThenKill(line: (uri: string, size: number) => string) {
  const a = await readyArchive();
  const la = issue(a.id);
  startWatch();
  await sentinel();
  const before = downloadEvents().length;
  const savedBefore = readFileSync(join(w.stateDir, 'watch.json'), 'utf8');
  appendFileSync(w.downloadLog, line(la.uri, a.size));
  await waitFor('the event', () => downloadEvents().length === before + 1);
  await stopWatch('SIGKILL');
  return { a, la, before, savedBefore };
}

function startWatch() {
  watcher = w.start(['watch']);
  return watcher;
}

async function stopWatch(signal: NodeJS.Signals = 'SIGTERM') {
  const p = watcher;
  watcher = null;
  if (!p || p.exitCode !== null) return;
  await new Promise<void>((resolve) => {
    p.once('exit', () => resolve());
    p.kill(signal);
  });
}

beforeAll(() => {
  w = makeWorld();
  mkdirSync(join(w.backupRoot, CUSTOMER, 'daily.0'), { recursive: true });
  writeFileSync(join(w.backupRoot, CUSTOMER, 'daily.0', 'data.bin'), Buffer.alloc(30_000, 7));
  writeFileSync(w.downloadLog, '');
  before = manifest(w.backupRoot);
});

afterEach(async () => {
  await stopWatch();
});

describe('watch', () => {
  it('records an interrupted download, removes the link at once and keeps the archive ready for a new link', async () => {
    const a = await readyArchive();
    const { uri, linkId } = issue(a.id);
    startWatch();
    appendFileSync(w.downloadLog, logLine(uri, 200, a.size - 1000, ''));
    const events = await waitFor('the interrupted download', () => (downloadEvents().length === 1 ? downloadEvents() : null));
    expect(events).toEqual([
      {
        seq: expect.any(Number),
        time: expect.any(String),
        type: 'download.interrupted',
        customer: CUSTOMER,
        archiveId: a.id,
        ip: '192.0.2.7',
        bytes: a.size - 1000,
        detail: `status 200, completion none, size ${a.size}, counted ${a.size - 1000} bytes from byte 0, delivered ${a.size - 1000} in 1 part`,
        delivered: { bytes: a.size - 1000, total: a.size, parts: 1 },
      },
    ]);
    expect(existsSync(join(w.linkRoot, linkId))).toBe(false);
    expect(w.run('archive.status', { customer: CUSTOMER, archiveId: a.id }).answer.result.state).toBe('ready');
    expect(issue(a.id).linkId).toMatch(/^[0-9a-f]{32}$/);
  });

  it('records a complete download once every byte was sent; a line claiming more than the file counts nothing; then the token is used up', async () => {
    const a = await readyArchive();
    const first = issue(a.id);
    const second = issue(a.id);
    const third = issue(a.id);
    startWatch();
    const before = downloadEvents().length;
    // All but the last byte, then more bytes than the archive has (not credible): both interrupted.
    appendFileSync(w.downloadLog, logLine(first.uri, 200, a.size - 1, 'OK'));
    appendFileSync(w.downloadLog, logLine(second.uri, 200, a.size + 1, 'OK'));
    appendFileSync(w.downloadLog, logLine(third.uri, 200, a.size, 'OK', '2001:db8::7'));
    const events = await waitFor('three download events', () =>
      downloadEvents().length === before + 3 ? downloadEvents().slice(before) : null,
    );
    expect(
      events.map((e: { type: string; ip: string; bytes: number; delivered: unknown }) => [e.type, e.ip, e.bytes, e.delivered]),
    ).toEqual([
      ['download.interrupted', '192.0.2.7', a.size - 1, { bytes: a.size - 1, total: a.size, parts: 1 }],
      ['download.interrupted', '192.0.2.7', a.size + 1, { bytes: a.size - 1, total: a.size, parts: 1 }],
      ['download.completed', '2001:db8::7', a.size, { bytes: a.size, total: a.size, parts: 2 }],
    ]);
    for (const l of [first, second, third]) expect(existsSync(join(w.linkRoot, l.linkId))).toBe(false);
    expect(w.run('archive.status', { customer: CUSTOMER, archiveId: a.id }).answer.result.state).toBe('downloaded');
    expect(existsSync(join(w.stateDir, 'tokens', `${a.id}.sha256`))).toBe(false);
    const again = w.run('link.issue', { customer: CUSTOMER, archiveId: a.id, token: TOKEN, clientIp: '192.0.2.7' });
    expect(again).toMatchObject({
      code: 1,
      answer: { ok: false, error: { code: 'refused', reason: 'downloaded' } },
    });
  });

  it('counts only the first complete download of an archive, then removes its file and keeps its record', async () => {
    const a = await readyArchive();
    const first = issue(a.id);
    const second = issue(a.id);
    startWatch();
    const before = downloadEvents().length;
    // Two whole downloads (two links, or one link served twice before watch read the log), then a late partial one.
    appendFileSync(w.downloadLog, logLine(first.uri, 200, a.size, 'OK'));
    appendFileSync(w.downloadLog, logLine(first.uri, 200, a.size, 'OK', '192.0.2.8'));
    appendFileSync(w.downloadLog, logLine(second.uri, 200, 10, ''));
    // The last line is the sentinel: watch notes it in the call log.
    await waitFor('the late lines to be noted', () =>
      readFileSync(join(w.stateDir, 'dispatcher.log'), 'utf8').match(/not counted/g)?.length === 2 ? true : null,
    );
    expect(
      downloadEvents()
        .slice(before)
        .map((e: { type: string; ip: string }) => [e.type, e.ip]),
    ).toEqual([['download.completed', '192.0.2.7']]);
    expect(existsSync(join(w.archiveRoot, `${a.id}.tar`))).toBe(false);
    expect(w.run('archive.status', { customer: CUSTOMER, archiveId: a.id }).answer.result).toMatchObject({
      state: 'downloaded',
      sizeBytes: a.size,
      percent: 100,
    });
    expect(readFileSync(join(w.stateDir, 'dispatcher.log'), 'utf8')).toContain(
      `for link ${first.linkId} of ${a.id} (downloaded) from 192.0.2.8, ${a.size} bytes; not counted`,
    );
  });

  it('is downloaded once ranges from several links cover every byte; overlaps and repeats count once, a cut range only what was sent', async () => {
    const a = await readyArchive();
    const links = Array.from({ length: 6 }, () => issue(a.id));
    startWatch();
    const before = downloadEvents().length;
    // A whole download cut after 10,000 bytes; a range overlapping it, cut after 5,000 of its bytes;
    // the same range again, whole; a repeat of bytes already counted; then all but the last byte.
    appendFileSync(w.downloadLog, logLine(links[0]!.uri, 200, 10_000, ''));
    appendFileSync(w.downloadLog, rangeLine(links[1]!.uri, a, 8_000, 19_999, 5_000, ''));
    appendFileSync(w.downloadLog, rangeLine(links[2]!.uri, a, 8_000, 19_999));
    appendFileSync(w.downloadLog, rangeLine(links[3]!.uri, a, 0, 4_999));
    appendFileSync(w.downloadLog, rangeLine(links[4]!.uri, a, 20_000, a.size - 2));
    const events = await waitFor('five download events', () =>
      downloadEvents().length === before + 5 ? downloadEvents().slice(before) : null,
    );
    expect(events.map((e: { type: string; delivered: { bytes: number } }) => [e.type, e.delivered])).toEqual([
      ['download.interrupted', { bytes: 10_000, total: a.size, parts: 1 }],
      ['download.interrupted', { bytes: 13_000, total: a.size, parts: 2 }],
      ['download.interrupted', { bytes: 20_000, total: a.size, parts: 3 }],
      ['download.interrupted', { bytes: 20_000, total: a.size, parts: 4 }],
      ['download.interrupted', { bytes: a.size - 1, total: a.size, parts: 5 }],
    ]);
    // Every byte but one: still ready, still linkable, its file still there.
    expect(archiveState(a.id)).toBe('ready');
    expect(existsSync(join(w.archiveRoot, `${a.id}.tar`))).toBe(true);
    const last = issue(a.id);
    appendFileSync(w.downloadLog, rangeLine(last.uri, a, a.size - 1, a.size - 1));
    const done = await waitFor('the completing range', () =>
      downloadEvents().length === before + 6 ? downloadEvents()[before + 5] : null,
    );
    expect(done).toMatchObject({
      type: 'download.completed',
      bytes: 1,
      detail: `status 206, completion OK, size ${a.size}, counted 1 bytes from byte ${a.size - 1}, delivered ${a.size} in 6 parts`,
      delivered: { bytes: a.size, total: a.size, parts: 6 },
    });
    expect(archiveState(a.id)).toBe('downloaded');
    expect(existsSync(join(w.archiveRoot, `${a.id}.tar`))).toBe(false);
    expect(links[5]!.linkId).toMatch(/^[0-9a-f]{32}$/);
  });

  it('counts nothing for a 206 whose Content-Range is missing, garbled, of another size, past the end, or shorter than what was sent', async () => {
    const a = await readyArchive();
    const bad = [
      logLine(issue(a.id).uri, 206, 100, 'OK'),
      logLine(issue(a.id).uri, 206, 100, 'OK', '192.0.2.7', 'bytes 0-99,200-299/' + a.size),
      logLine(issue(a.id).uri, 206, 100, 'OK', '192.0.2.7', `bytes 0-99/${a.size + 1}`),
      logLine(issue(a.id).uri, 206, 100, 'OK', '192.0.2.7', `bytes ${a.size}-${a.size + 99}/${a.size}`),
      logLine(issue(a.id).uri, 206, 100, 'OK', '192.0.2.7', `bytes 0-49/${a.size}`),
      logLine(issue(a.id).uri, 206, 100, 'OK', '192.0.2.7', `bytes 99-0/${a.size}`),
      logLine(issue(a.id).uri, 206, 100, 'OK', '192.0.2.7', `bytes -1-99/${a.size}`),
      logLine(issue(a.id).uri, 200, a.size, 'OK', '192.0.2.7', `bytes 0-${a.size - 1}/${a.size}`),
    ];
    startWatch();
    const before = downloadEvents().length;
    for (const line of bad) appendFileSync(w.downloadLog, line);
    // An over-long content_range makes the whole line unreadable (skipped, link kept).
    appendFileSync(w.downloadLog, logLine(issue(a.id).uri, 206, 100, 'OK', '192.0.2.7', `bytes 0-99/${'9'.repeat(80)}`));
    const events = await waitFor('eight download events', () =>
      downloadEvents().length === before + bad.length ? downloadEvents().slice(before) : null,
    );
    await sentinel();
    expect(downloadEvents().length).toBe(before + bad.length);
    for (const e of events) {
      expect(e).toMatchObject({ type: 'download.interrupted', delivered: { bytes: 0, total: a.size, parts: 0 } });
      expect(e.detail).toMatch(/, nothing counted, delivered 0 in 0 parts$/);
    }
    expect(archiveState(a.id)).toBe('ready');
  });

  it('reads only a bounded window of a long event log when it starts', async () => {
    // Years of events with no download in them: watch must not read them all to find where it was.
    await stopWatch();
    const line = `${JSON.stringify({ seq: 0, time: '2020-01-01T00:00:00.000Z', type: 'archive.armed', customer: CUSTOMER, archiveId: 'a'.repeat(32), ip: null, bytes: null, detail: 'x'.repeat(120) })}\n`;
    const events = join(w.stateDir, 'events.log');
    const kept = readFileSync(events);
    const filler = Buffer.from(line.repeat(Math.ceil((48 << 20) / line.length)));
    writeFileSync(events, Buffer.concat([kept, filler]));
    try {
      const p = startWatch();
      appendFileSync(w.downloadLog, 'a line watch skips\n');
      await waitFor('watch to read the download log', () =>
        readFileSync(join(w.stateDir, 'dispatcher.log'), 'utf8').includes(`"pid":${p.pid},"outcome":"note","detail":"watch: skipped a line`)
          ? true
          : null,
      );
      const rchar = Number(/^rchar: (\d+)$/m.exec(readFileSync(`/proc/${p.pid}/io`, 'utf8'))?.[1]);
      expect(rchar).toBeGreaterThan(0);
      expect(rchar).toBeLessThan(16 << 20);
    } finally {
      await stopWatch();
      writeFileSync(events, kept);
    }
  });

  it('skips garbage, foreign and unknown-link lines and keeps going', async () => {
    const a = await readyArchive();
    const { uri } = issue(a.id);
    startWatch();
    const before = downloadEvents().length;
    appendFileSync(w.downloadLog, 'this is not json\n');
    appendFileSync(w.downloadLog, '{"uri":"/dl/0123/x","status":"200"}\n');
    appendFileSync(w.downloadLog, '[1,2,3]\n\n');
    appendFileSync(w.downloadLog, Buffer.from([0xff, 0xfe, 0x0a]));
    appendFileSync(w.downloadLog, logLine('/favicon.ico', 404, 0, 'OK'));
    appendFileSync(w.downloadLog, logLine(`/dl/${'e'.repeat(32)}/x.tar`, 200, a.size, 'OK'));
    appendFileSync(w.downloadLog, logLine(`/dl/../../etc/passwd`, 200, a.size, 'OK'));
    appendFileSync(w.downloadLog, logLine(uri, 200, a.size, 'OK'));
    const events = await waitFor('the one real download', () => (downloadEvents().length > before ? downloadEvents().slice(before) : null));
    await sentinel();
    expect(downloadEvents().slice(before)).toEqual(events);
    expect(events.map((e: { type: string; archiveId: string }) => [e.type, e.archiveId])).toEqual([['download.completed', a.id]]);
  });

  it('follows the log across rotation by rename, including lines written to the old file before nginx reopened it', async () => {
    const a = await readyArchive();
    const b = await readyArchive();
    const la = issue(a.id);
    const lb = issue(b.id);
    startWatch();
    await sentinel();
    const before = downloadEvents().length;
    renameSync(w.downloadLog, `${w.downloadLog}.1`);
    // nginx keeps writing the renamed file until it gets USR1.
    appendFileSync(`${w.downloadLog}.1`, logLine(la.uri, 200, a.size, 'OK'));
    await waitFor('the line written to the renamed file', () => downloadEvents().length === before + 1);
    writeFileSync(w.downloadLog, logLine(lb.uri, 200, 10, ''));
    const events = await waitFor('both downloads', () => (downloadEvents().length === before + 2 ? downloadEvents().slice(before) : null));
    expect(events.map((e: { type: string; archiveId: string }) => [e.type, e.archiveId])).toEqual([
      ['download.completed', a.id],
      ['download.interrupted', b.id],
    ]);
  });

  it('after a rotation keeps reading the old file, where workers finishing a download before the reload log it', async () => {
    const a = await readyArchive();
    const b = await readyArchive();
    const la = issue(a.id);
    const lb = issue(b.id);
    startWatch();
    const before = downloadEvents().length;
    renameSync(w.downloadLog, `${w.downloadLog}.1`);
    writeFileSync(w.downloadLog, logLine(lb.uri, 200, 10, ''));
    await waitFor('the new file to be read', () => (downloadEvents().length === before + 1 ? true : null));
    // An old worker (nginx reloaded, not reopened) ends its download now, in the old file.
    appendFileSync(`${w.downloadLog}.1`, logLine(la.uri, 200, a.size, 'OK'));
    const events = await waitFor('the late line of the old file', () =>
      downloadEvents().length === before + 2 ? downloadEvents().slice(before) : null,
    );
    expect(events.map((e: { type: string; archiveId: string }) => [e.type, e.archiveId])).toEqual([
      ['download.interrupted', b.id],
      ['download.completed', a.id],
    ]);
    // A restart resumes on the current file, not on the old one's newer event.
    await stopWatch();
    appendFileSync(w.downloadLog, logLine(lb.uri, 200, 20, ''));
    startWatch();
    await waitFor('the line after the restart', () => (downloadEvents().length === before + 3 ? true : null));
    // A sentinel line: anything replayed at start would be recorded before it.
    appendFileSync(w.downloadLog, logLine(lb.uri, 200, 30, ''));
    await waitFor('the sentinel', () => downloadEvents().some((e: { bytes: number }) => e.bytes === 30));
    expect(
      downloadEvents()
        .slice(before)
        .map((e: { bytes: number }) => e.bytes),
    ).toEqual([10, a.size, 20, 30]);
  });

  it('resumes after a restart without losing or counting a line twice', async () => {
    const a = await readyArchive();
    const b = await readyArchive();
    const la = issue(a.id);
    const lb = issue(b.id);
    startWatch();
    const before = downloadEvents().length;
    appendFileSync(w.downloadLog, logLine(la.uri, 200, 5, ''));
    await waitFor('first event', () => downloadEvents().length === before + 1);
    await stopWatch();
    // Written while watch was down.
    appendFileSync(w.downloadLog, logLine(lb.uri, 200, b.size, 'OK'));
    startWatch();
    await waitFor('second event', () => downloadEvents().length === before + 2);
    await sentinel();
    expect(
      downloadEvents()
        .slice(before)
        .map((e: { archiveId: string }) => e.archiveId),
    ).toEqual([a.id, b.id]);
  });

  it('does not count a line twice after a crash between recording it and saving its position', async () => {
    const { a, before, savedBefore } = await downloadThenKill((uri) => logLine(uri, 200, 77, ''));
    // Put back the position from before the line, as if the crash came before the save.
    writeFileSync(join(w.stateDir, 'watch.json'), savedBefore);
    startWatch();
    await sentinel();
    expect(downloadEvents().length).toBe(before + 1);
    // The replayed line's bytes are in the record once, and it is not a second part.
    const rec = JSON.parse(readFileSync(join(w.stateDir, 'archives', `${a.id}.json`), 'utf8'));
    expect([rec.delivered, rec.deliveredParts]).toEqual([[[0, 77]], 1]);
  });

  it('writes the event of a completing line after a crash between recording it and writing the event', async () => {
    const { a, la, before, savedBefore } = await downloadThenKill((uri, size) => logLine(uri, 200, size, 'OK'));
    // As if the crash came after the record said "downloaded" and before the event and the save.
    const eventsLog = join(w.stateDir, 'events.log');
    const lines = readFileSync(eventsLog, 'utf8')
      .split('\n')
      .filter((l) => l !== '');
    expect(JSON.parse(lines.at(-1)!)).toMatchObject({ type: 'download.completed', archiveId: a.id });
    writeFileSync(eventsLog, `${lines.slice(0, -1).join('\n')}\n`);
    writeFileSync(join(w.stateDir, 'watch.json'), savedBefore);
    expect(downloadEvents().length).toBe(before);
    expect(archiveState(a.id)).toBe('downloaded');
    startWatch();
    await waitFor('the lost event', () => downloadEvents().length === before + 1);
    await sentinel();
    expect(downloadEvents().slice(before)).toMatchObject([
      { type: 'download.completed', archiveId: a.id, delivered: { bytes: a.size, total: a.size, parts: 1 } },
    ]);
    const rec = JSON.parse(readFileSync(join(w.stateDir, 'archives', `${a.id}.json`), 'utf8'));
    expect([rec.delivered, rec.deliveredParts]).toEqual([[[0, a.size]], 1]);
    // A later line for the same archive is still only noted.
    appendFileSync(w.downloadLog, logLine(la.uri, 200, a.size, 'OK'));
    await sentinel();
    expect(downloadEvents().length).toBe(before + 1);
  });

  it('starts again from the top of a truncated (copytruncate) log', async () => {
    const a = await readyArchive();
    const la = issue(a.id);
    startWatch();
    await sentinel();
    const before = downloadEvents().length;
    truncateSync(w.downloadLog, 0);
    appendFileSync(w.downloadLog, logLine(la.uri, 200, 3, ''));
    await waitFor('the event after truncation', () => downloadEvents().length === before + 1);
  });

  it('keeps the link when nginx refused the request (wrong address, bad signature, expired)', async () => {
    const a = await readyArchive();
    const l = issue(a.id);
    startWatch();
    const before = downloadEvents().length;
    appendFileSync(w.downloadLog, logLine(l.uri, 403, 150, 'OK', '198.51.100.66'));
    appendFileSync(w.downloadLog, logLine(l.uri, 410, 150, 'OK', '192.0.2.7'));
    await sentinel();
    expect(existsSync(join(w.linkRoot, l.linkId))).toBe(true);
    expect(downloadEvents().length).toBe(before);
    appendFileSync(w.downloadLog, logLine(l.uri, 200, a.size, 'OK'));
    await waitFor('the real download', () => downloadEvents().length === before + 1);
    expect(existsSync(join(w.linkRoot, l.linkId))).toBe(false);
  });

  it('still records a download that ends after sweep removed its expired link directory', async () => {
    const a = await readyArchive();
    const l = issue(a.id);
    expect(w.run('sweep', '', { ARCHWAY_DISPATCHER_NOW_OFFSET: '3600' }).answer.result.linksRemoved).toBeGreaterThanOrEqual(1);
    expect(existsSync(join(w.linkRoot, l.linkId))).toBe(false);
    startWatch();
    const before = downloadEvents().length;
    appendFileSync(w.downloadLog, logLine(l.uri, 200, a.size, 'OK'));
    const events = await waitFor('the late download', () =>
      downloadEvents().length === before + 1 ? downloadEvents().slice(before) : null,
    );
    expect(events[0]).toMatchObject({ type: 'download.completed', archiveId: a.id });
    expect(w.run('archive.status', { customer: CUSTOMER, archiveId: a.id }).answer.result.state).toBe('downloaded');
  });

  it('refuses to run twice at the same time', async () => {
    startWatch();
    await waitFor('the watch lock', () => existsSync(join(w.stateDir, 'locks', 'watch.lock')));
    const second = w.run('watch', '');
    expect(second).toMatchObject({ code: 1, answer: { ok: false, error: { code: 'refused', reason: 'already_running' } } });
  });

  it('leaves BACKUP_ROOT byte-identical, with the same mtimes, and no stray link directories', () => {
    expect(manifest(w.backupRoot)).toEqual(before);
    expect(readdirSync(w.linkRoot).every((d) => /^[0-9a-f]{32}$/.test(d))).toBe(true);
  });
});

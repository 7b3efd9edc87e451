// The shipped downloads vhost, on its own: only signed, unexpired links for the right address are served.
import { randomBytes } from 'node:crypto';
import { createHash } from 'node:crypto';
import { chmod, chown, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { lchown } from 'node:fs/promises';
import { request, type IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { secureLinkMd5 } from '../../src/protocol/index.js';
import { startNginx, type PrivateNginx } from '../harness/nginx.js';
import { findProgram, run } from '../harness/sshd.js';
import { eventually } from './fixture.js';
import { httpGet } from './http-get.js';

const PORTAL = 'https://portal.example.net/downloads';
const BIG = 24 * 1024 * 1024;
let base: string;
let nginx: PrivateNginx;
let linkRoot: string;
let archiveRoot: string;
let downloadLog: string;
let secret: string;
let archive: Buffer;
let wwwData: number;

/** Makes a link the way the dispatcher does: a root-owned symlink in a fresh random directory. */
async function makeLink(target: string, fileName = 'example.org-daily.0-0123abcd.tar'): Promise<string> {
  const dir = randomBytes(16).toString('hex');
  await mkdir(join(linkRoot, dir), { mode: 0o750 });
  await chown(join(linkRoot, dir), 0, wwwData);
  await symlink(target, join(linkRoot, dir, fileName));
  return `/dl/${dir}/${fileName}`;
}

function signed(uri: string, ip: string, expires = Math.floor(Date.now() / 1000) + 60): string {
  return `${nginx.baseUrl}${uri}?md5=${secureLinkMd5(expires, uri, ip, secret)}&expires=${expires}`;
}

async function downloadLogLines(): Promise<Array<Record<string, unknown>>> {
  const text = await readFile(downloadLog, 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

beforeAll(async () => {
  wwwData = Number((await run(findProgram('getent'), ['group', 'www-data'])).stdout.split(':')[2]);
  base = await mkdtemp(join(tmpdir(), 'archway-vhost-'));
  await chmod(base, 0o755);
  archiveRoot = join(base, 'archives');
  linkRoot = join(base, 'links');
  for (const d of [archiveRoot, linkRoot]) {
    await mkdir(d, { mode: 0o750 });
    await chown(d, 0, wwwData);
  }
  archive = randomBytes(3 * 1024 * 1024 + 17);
  await writeFile(join(archiveRoot, 'a.tar'), archive, { mode: 0o640 });
  await chown(join(archiveRoot, 'a.tar'), 0, wwwData);
  await writeFile(join(archiveRoot, 'big.tar'), Buffer.alloc(BIG, 1), { mode: 0o640 });
  await chown(join(archiveRoot, 'big.tar'), 0, wwwData);
  secret = randomBytes(32).toString('base64url');
  downloadLog = join(base, 'nginx', 'logs', 'download.log');
  nginx = await startNginx({ dir: join(base, 'nginx'), linkRoot, secret, downloadLog, portalUrl: PORTAL });
});

afterAll(async () => {
  await nginx?.stop();
  if (base) await rm(base, { recursive: true, force: true });
});

describe('the downloads vhost', () => {
  it('serves a signed link to its address, whole, as an attachment, and logs it as a JSON line', async () => {
    const uri = await makeLink(join(archiveRoot, 'a.tar'));
    const got = await httpGet(signed(uri, '127.0.0.2'), { localAddress: '127.0.0.2' });
    expect(got.status).toBe(200);
    expect(got.sha256).toBe(createHash('sha256').update(archive).digest('hex'));
    expect(got.headers['content-disposition']).toBe('attachment; filename="example.org-daily.0-0123abcd.tar"');
    expect(got.headers['content-type']).toBe('application/x-tar');
    expect(got.headers['content-length']).toBe(String(archive.length));
    // Download managers look for this before they offer to resume.
    expect(got.headers['accept-ranges']).toBe('bytes');
    expect(await readFile(nginx.accessLog, 'utf8')).toMatch(
      new RegExp(`^127\\.0\\.0\\.2 - - \\[[^\\]]+\\] "GET ${uri} HTTP/1\\.1" 200 ${archive.length} "-" "-"$`, 'm'),
    );
    const line = (await downloadLogLines()).find((l) => l.uri === uri);
    expect(line).toMatchObject({ remote_addr: '127.0.0.2', uri, status: 200, bytes: archive.length, completion: 'OK', content_range: '' });
    expect(typeof line?.time).toBe('string');
    expect(typeof line?.request_time).toBe('number');
  });

  it('answers a single byte range with 206 and logs where it started, so watch can count those bytes', async () => {
    for (const [range, first, last] of [
      ['bytes=100-199', 100, 199],
      ['bytes=3000000-', 3_000_000, archive.length - 1],
      ['bytes=-17', archive.length - 17, archive.length - 1],
      ['bytes=0-99999999', 0, archive.length - 1],
    ] as const) {
      const uri = await makeLink(join(archiveRoot, 'a.tar'));
      const got = await httpGet(signed(uri, '127.0.0.2'), { localAddress: '127.0.0.2', headers: { Range: range } });
      expect([range, got.status, got.headers['content-range']]).toEqual([range, 206, `bytes ${first}-${last}/${archive.length}`]);
      expect(got.body.equals(archive.subarray(first, last + 1))).toBe(true);
      const line = await eventually('the range in the download log', async () => (await downloadLogLines()).find((l) => l.uri === uri));
      expect(line).toMatchObject({
        status: 206,
        bytes: last - first + 1,
        completion: 'OK',
        content_range: `bytes ${first}-${last}/${archive.length}`,
      });
    }
  });

  it('answers several ranges, or a Range of another unit, with the whole file; a garbled or past-the-end range with 416', async () => {
    for (const range of ['bytes=0-9,20-29', 'bytes=0-0,-1', 'items=0-9', 'bytes 0-9']) {
      const uri = await makeLink(join(archiveRoot, 'a.tar'));
      const got = await httpGet(signed(uri, '127.0.0.2'), { localAddress: '127.0.0.2', headers: { Range: range } });
      expect([range, got.status, got.headers['content-range'], got.body.length]).toEqual([range, 200, undefined, archive.length]);
      const line = await eventually('the whole answer in the download log', async () =>
        (await downloadLogLines()).find((l) => l.uri === uri),
      );
      expect(line).toMatchObject({ status: 200, bytes: archive.length, content_range: '' });
    }
    for (const range of ['bytes=abc', `bytes=${archive.length}-`, 'bytes=5-2', 'bytes=-0', 'bytes=99999999999999999999-']) {
      const uri = await makeLink(join(archiveRoot, 'a.tar'));
      const got = await httpGet(signed(uri, '127.0.0.2'), { localAddress: '127.0.0.2', headers: { Range: range } });
      expect([range, got.status, got.headers['content-range']]).toEqual([range, 416, `bytes */${archive.length}`]);
      const line = await eventually('the refusal in the download log', async () => (await downloadLogLines()).find((l) => l.uri === uri));
      expect(line).toMatchObject({ status: 416, content_range: `bytes */${archive.length}` });
    }
  });

  it('answers 403 with a page pointing back to the portal when the link is used from another address, and does not log it as a download', async () => {
    const uri = await makeLink(join(archiveRoot, 'a.tar'));
    const got = await httpGet(signed(uri, '127.0.0.2'), { localAddress: '127.0.0.3' });
    expect(got.status).toBe(403);
    expect(got.headers['content-type']).toMatch(/^text\/html/);
    expect(got.body.toString()).toContain(`href="${PORTAL}"`);
    expect((await downloadLogLines()).some((l) => l.uri === uri)).toBe(false);
    expect(await readFile(nginx.accessLog, 'utf8')).toMatch(new RegExp(`^127\\.0\\.0\\.3 .*"GET ${uri} HTTP/1\\.1" 403 `, 'm'));
  });

  it('answers 403 to a tampered expiry and to a missing signature', async () => {
    const uri = await makeLink(join(archiveRoot, 'a.tar'));
    const good = signed(uri, '127.0.0.2');
    const later = good.replace(/expires=(\d+)/, (_, e: string) => `expires=${Number(e) + 3600}`);
    expect((await httpGet(later, { localAddress: '127.0.0.2' })).status).toBe(403);
    expect((await httpGet(`${nginx.baseUrl}${uri}`, { localAddress: '127.0.0.2' })).status).toBe(403);
  });

  it('answers 410 with a friendly page to an expired link', async () => {
    const uri = await makeLink(join(archiveRoot, 'a.tar'));
    const got = await httpGet(signed(uri, '127.0.0.2', Math.floor(Date.now() / 1000) - 1), { localAddress: '127.0.0.2' });
    expect(got.status).toBe(410);
    expect(got.body.toString()).toContain('expired');
    expect(got.body.toString()).toContain(`href="${PORTAL}"`);
  });

  it('answers 404 to a signed link whose directory is gone, and to anything that is not a link', async () => {
    const uri = `/dl/${randomBytes(16).toString('hex')}/example.org-x-00000000.tar`;
    expect((await httpGet(signed(uri, '127.0.0.2'), { localAddress: '127.0.0.2' })).status).toBe(404);
    for (const path of ['/', '/dl/', `/dl/${randomBytes(16).toString('hex')}/`, '/dl/../archives/a.tar', '/_archway_errors/403.html']) {
      expect((await httpGet(`${nginx.baseUrl}${path}`, { localAddress: '127.0.0.2' })).status).toBe(404);
    }
  });

  it('refuses a symlink made by someone other than root, even when signed', async () => {
    const dir = randomBytes(16).toString('hex');
    await mkdir(join(linkRoot, dir), { mode: 0o755 });
    const link = join(linkRoot, dir, 'example.org-x-00000000.tar');
    await symlink(join(archiveRoot, 'a.tar'), link);
    await lchown(link, 65534, 65534);
    const got = await httpGet(signed(`/dl/${dir}/example.org-x-00000000.tar`, '127.0.0.2'), { localAddress: '127.0.0.2' });
    expect(got.status).toBe(403);
    expect(got.body.includes(archive.subarray(0, 64))).toBe(false);
  });

  it('answers a HEAD without logging it as a download, so it cannot burn the link', async () => {
    const uri = await makeLink(join(archiveRoot, 'a.tar'));
    const head = await httpGet(signed(uri, '127.0.0.2'), { localAddress: '127.0.0.2', method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers['content-length']).toBe(String(archive.length));
    expect((await downloadLogLines()).some((l) => l.uri === uri)).toBe(false);
  });

  it('keeps the signature and expiry out of the access log, for served and refused links alike', async () => {
    const uri = await makeLink(join(archiveRoot, 'a.tar'));
    const url = signed(uri, '127.0.0.2');
    const md5 = new URL(url).searchParams.get('md5')!;
    expect((await httpGet(url, { localAddress: '127.0.0.3', headers: { Referer: `${url}&more=1` } })).status).toBe(403);
    expect((await httpGet(url, { localAddress: '127.0.0.2' })).status).toBe(200);
    const linesOf = (text: string) => text.split('\n').filter((l) => l.includes(` ${uri} `));
    const log = await eventually('both access log lines', async () => {
      const text = await readFile(nginx.accessLog, 'utf8');
      return linesOf(text).length === 2 ? text : undefined;
    });
    expect(linesOf(log)).toEqual([
      expect.stringMatching(
        new RegExp(`^127\\.0\\.0\\.3 - - \\[[^\\]]+\\] "GET ${uri} HTTP/1\\.1" 403 \\d+ "${nginx.baseUrl}${uri}" "-"$`),
      ),
      expect.stringMatching(new RegExp(`^127\\.0\\.0\\.2 - - \\[[^\\]]+\\] "GET ${uri} HTTP/1\\.1" 200 ${archive.length} "-" "-"$`)),
    ]);
    expect(log).not.toContain(md5);
    expect(log).not.toContain('expires=');
  });

  it('serves one request at a time per link: a second GET while the first runs gets 429 and a page, then the link works again', async () => {
    const uri = await makeLink(join(archiveRoot, 'big.tar'), 'example.org-daily.0-0badcafe.tar');
    const url = signed(uri, '127.0.0.2');
    // The first download stops reading after its headers, so nginx is still sending (the file is far larger than socket buffers).
    const first = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = request(url, { localAddress: '127.0.0.2', agent: false }, (res) => {
        res.pause();
        resolve(res);
      });
      req.on('error', reject);
      req.end();
    });
    expect(first.statusCode).toBe(200);
    const second = await httpGet(url, { localAddress: '127.0.0.2' });
    expect(second.status).toBe(429);
    expect(second.body.toString()).toContain('already running');
    expect(second.body.toString()).toContain(`href="${PORTAL}"`);
    let firstBytes = 0;
    await new Promise<void>((resolve, reject) => {
      first.on('data', (chunk: Buffer) => (firstBytes += chunk.length));
      first.on('end', resolve);
      first.on('error', reject);
      first.resume();
    });
    expect(firstBytes).toBe(BIG);
    // Only the served request reaches the download log that watch follows.
    expect((await downloadLogLines()).filter((l) => l.uri === uri).map((l) => l.status)).toEqual([200]);
    const third = await httpGet(url, { localAddress: '127.0.0.2', stopAfterBytes: 1 });
    expect(third.status).toBe(200);
  });

  it('refuses methods other than GET and HEAD', async () => {
    const uri = await makeLink(join(archiveRoot, 'a.tar'));
    const got = await httpGet(signed(uri, '127.0.0.2'), { localAddress: '127.0.0.2', method: 'DELETE' });
    expect(got.status).toBe(403);
  });
});

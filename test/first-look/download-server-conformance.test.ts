// The first-look download server answers every kind of request as the shipped NGINX downloads vhost does.
import { createHash, randomBytes } from 'node:crypto';
import { chmod, chown, lchown, mkdir, mkdtemp, readFile, rm, symlink, truncate, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDownloadLine } from '../../src/dispatcher/engine/watch.js';
import { startDownloadServer, type DownloadServer } from '../../src/first-look/download-server.js';
import { secureLinkMd5 } from '../../src/protocol/index.js';
import { eventually } from '../harness/eventually.js';
import { httpGet, type GetOptions } from '../backup-host/http-get.js';
import { startNginx, type PrivateNginx } from '../harness/nginx.js';
import { findProgram, run } from '../harness/sshd.js';

const PORTAL = 'https://portal.example.net/backups';
const CUSTOMER = '127.0.0.2';
const STRANGER = '127.0.0.3';
const FILE = 'example.org-daily.0-0123abcd.tar';
/** Big enough that neither server can hand it all to the socket buffers before the client leaves. */
const BIG = 256 * 1024 * 1024;

let base: string;
let nginx: PrivateNginx;
let firstLook: DownloadServer;
let linkRoot: string;
let archiveRoot: string;
let nginxLog: string;
let firstLookLog: string;
let secret: string;
let archive: Buffer;
let wwwData: number;

async function owned(path: string, mode: number): Promise<void> {
  await chown(path, 0, wwwData);
  await chmod(path, mode);
}

/** A link as the dispatcher makes it: a root-owned symlink in a fresh random directory under the link root. */
async function makeLink(target: string, options: { linkOwner?: number } = {}): Promise<string> {
  const dir = randomBytes(16).toString('hex');
  await mkdir(join(linkRoot, dir));
  await owned(join(linkRoot, dir), 0o750);
  await symlink(target, join(linkRoot, dir, FILE));
  if (options.linkOwner !== undefined) await lchown(join(linkRoot, dir, FILE), options.linkOwner, options.linkOwner);
  return `/dl/${dir}/${FILE}`;
}

function query(uri: string, ip: string, expires = Math.floor(Date.now() / 1000) + 60): string {
  return `?md5=${secureLinkMd5(expires, uri, ip, secret)}&expires=${expires}`;
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  sha256: string;
  bytes: number;
}

/** Sends the same request, byte for byte, to NGINX and to the first-look server. */
async function askBoth(rawPath: string, options: Omit<GetOptions, 'rawPath'>): Promise<{ nginx: Answer; firstLook: Answer }> {
  const one = (baseUrl: string) => httpGet(baseUrl, { discardBody: true, ...options, rawPath });
  return { nginx: await one(nginx.baseUrl), firstLook: await one(firstLook.url) };
}

/** The parts of an answer a browser, a download manager or an attacker acts on. */
function essentials(a: Answer, withBody: boolean): Record<string, unknown> {
  return {
    status: a.status,
    contentLength: a.headers['content-length'],
    contentType: a.headers['content-type'],
    contentDisposition: a.headers['content-disposition'],
    acceptRanges: a.headers['accept-ranges'],
    contentRange: a.headers['content-range'],
    cacheControl: a.headers['cache-control'],
    nosniff: a.headers['x-content-type-options'],
    // The archive's validators (error pages carry NGINX's ETag of the page file, which has no meaning here).
    ...(a.status === 200 || a.status === 304 ? { etag: a.headers.etag, lastModified: a.headers['last-modified'] } : {}),
    ...(withBody ? { sha256: a.sha256, bytes: a.bytes } : {}),
  };
}

async function expectSameAnswer(rawPath: string, options: Omit<GetOptions, 'rawPath'>, expectedStatus: number): Promise<Answer> {
  const got = await askBoth(rawPath, options);
  expect(got.nginx.status, `nginx for ${rawPath}`).toBe(expectedStatus);
  expect(essentials(got.firstLook, true), `first look for ${rawPath}`).toEqual(essentials(got.nginx, true));
  return got.nginx;
}

/** A GET whose client stops reading once the headers are in: the server keeps serving it until `drop`. */
function holdDownload(baseUrl: string, rawPath: string): Promise<{ status: number; drop: () => void }> {
  return new Promise((resolve, reject) => {
    const req = request(baseUrl, { path: rawPath, localAddress: CUSTOMER, agent: false }, (res) => {
      res.pause();
      resolve({ status: res.statusCode ?? 0, drop: () => req.destroy() });
    });
    req.on('error', reject);
    req.end();
  });
}

/** The status of a HEAD for rawPath from the customer's address. */
function headStatus(baseUrl: string, rawPath: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(baseUrl, { path: rawPath, method: 'HEAD', localAddress: CUSTOMER, agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

/** What `watch` makes of a download log: its parsed records, without the clock fields. */
async function watchRecords(log: string): Promise<Array<Record<string, unknown>>> {
  const text = await readFile(log, 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      const parsed = parseDownloadLine(l);
      expect(parsed, `watch parses ${l}`).not.toBeNull();
      const { time, ...rest } = parsed!;
      expect(time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$/);
      expect(JSON.parse(l)).toHaveProperty('request_time');
      return rest;
    });
}

beforeAll(async () => {
  wwwData = Number((await run(findProgram('getent'), ['group', 'www-data'])).stdout.split(':')[2]);
  base = await mkdtemp(join(tmpdir(), 'archway-fl-dl-'));
  await chmod(base, 0o755);
  archiveRoot = join(base, 'archives');
  linkRoot = join(base, 'links');
  for (const d of [archiveRoot, linkRoot]) {
    await mkdir(d);
    await owned(d, 0o750);
  }
  archive = randomBytes(3 * 1024 * 1024 + 17);
  await writeFile(join(archiveRoot, 'a.tar'), archive);
  await owned(join(archiveRoot, 'a.tar'), 0o640);
  // Sparse: a large archive costs no disk and reads fast.
  await writeFile(join(archiveRoot, 'big.tar'), '');
  await truncate(join(archiveRoot, 'big.tar'), BIG);
  await owned(join(archiveRoot, 'big.tar'), 0o640);
  secret = randomBytes(32).toString('base64url');
  const secretFile = join(base, 'secure-link.secret');
  await writeFile(secretFile, `${secret}\n`, { mode: 0o600 });
  nginxLog = join(base, 'nginx', 'logs', 'download.log');
  firstLookLog = join(base, 'first-look', 'download.log');
  await mkdir(join(base, 'first-look'));
  nginx = await startNginx({ dir: join(base, 'nginx'), linkRoot, secret, downloadLog: nginxLog, portalUrl: PORTAL });
  firstLook = await startDownloadServer({
    host: '127.0.0.1',
    port: 0,
    linkRoot,
    secureLinkSecretFile: secretFile,
    accessLog: firstLookLog,
    portalUrl: PORTAL,
  });
});

afterAll(async () => {
  await firstLook?.close();
  await nginx?.stop();
  if (base) await rm(base, { recursive: true, force: true });
});

describe('the first-look download server next to the shipped NGINX vhost', () => {
  it('serves a signed link whole, as an attachment, with the same headers', async () => {
    const uri = await makeLink(join(archiveRoot, 'a.tar'));
    const got = await expectSameAnswer(uri + query(uri, CUSTOMER), { localAddress: CUSTOMER }, 200);
    expect(got.sha256).toBe(createHash('sha256').update(archive).digest('hex'));
    expect(got.headers['content-disposition']).toBe(`attachment; filename="${FILE}"`);
    expect(got.headers['content-length']).toBe(String(archive.length));
    expect(got.headers['accept-ranges']).toBe('bytes');
  });

  it('answers one byte range with 206, several or another unit with the whole file, garbled or past the end with 416', async () => {
    const uri = await makeLink(join(archiveRoot, 'a.tar'));
    const n = archive.length;
    const cases: Array<[string, number]> = [
      ['bytes=100-199', 206],
      ['bytes=0-', 206],
      ['bytes=-5', 206],
      [`bytes=${n - 1}-`, 206],
      ['bytes=0-99999999', 206],
      ['BYTES= 7 - 9 ', 206],
      ['bytes=-99999999', 206],
      ['bytes=1-2,5-6', 200],
      ['bytes=0-0,-1', 200],
      ['bytes=5-2,0-1', 206],
      ['items=0-9', 200],
      ['bytes 0-9', 200],
      ['bytes=', 200],
      ['bytes=abc', 416],
      [`bytes=${n}-`, 416],
      [`bytes=${n}-${n + 10}`, 416],
      ['bytes=5-2', 416],
      ['bytes=-0', 416],
      ['bytes=1-2;x', 416],
      ['bytes=99999999999999999999-', 416],
      ['bytes=0-99999999999999999999', 416],
    ];
    for (const [range, status] of cases) {
      const got = await expectSameAnswer(uri + query(uri, CUSTOMER), { localAddress: CUSTOMER, headers: { Range: range } }, status);
      if (status === 200) expect(got.bytes).toBe(archive.length);
    }
    const head = await expectSameAnswer(
      uri + query(uri, CUSTOMER),
      { localAddress: CUSTOMER, method: 'HEAD', headers: { Range: 'bytes=10-' } },
      206,
    );
    expect(head.headers['content-length']).toBe(String(n - 10));
  });

  it('honours If-Range as NGINX does: the range for the current ETag or date, the whole file otherwise', async () => {
    const uri = await makeLink(join(archiveRoot, 'a.tar'));
    const signedUri = uri + query(uri, CUSTOMER);
    const first = await expectSameAnswer(signedUri, { localAddress: CUSTOMER, method: 'HEAD' }, 200);
    const cases: Array<[string, number]> = [
      [String(first.headers.etag), 206],
      [String(first.headers['last-modified']), 206],
      ['"other"', 200],
      [`W/${String(first.headers.etag)}`, 200],
      ['Mon, 01 Jan 2001 00:00:00 GMT', 200],
      ['not a date', 200],
    ];
    for (const [ifRange, status] of cases) {
      await expectSameAnswer(signedUri, { localAddress: CUSTOMER, headers: { Range: 'bytes=10-19', 'If-Range': ifRange } }, status);
    }
  });

  it('logs a range cut short with its Content-Range and the bytes it was sent', async () => {
    const uri = await makeLink(join(archiveRoot, 'big.tar'));
    const start = BIG / 2;
    const got = await askBoth(uri + query(uri, CUSTOMER), {
      localAddress: CUSTOMER,
      stopAfterBytes: 1024 * 1024,
      headers: { Range: `bytes=${start}-` },
    });
    for (const a of [got.nginx, got.firstLook])
      expect([a.status, a.headers['content-range']]).toEqual([206, `bytes ${start}-${BIG - 1}/${BIG}`]);
    for (const log of [nginxLog, firstLookLog]) {
      const record = await eventually(`the cut range in ${log}`, async () => (await watchRecords(log)).find((r) => r.uri === uri));
      expect(record).toMatchObject({ status: 206, completion: '', contentRange: `bytes ${start}-${BIG - 1}/${BIG}` });
      expect(record.bytes).toBeGreaterThan(0);
      expect(record.bytes).toBeLessThan(BIG - start);
    }
  });

  it('answers a HEAD with the length and no body', async () => {
    const uri = await makeLink(join(archiveRoot, 'a.tar'));
    const got = await expectSameAnswer(uri + query(uri, CUSTOMER), { localAddress: CUSTOMER, method: 'HEAD' }, 200);
    expect(got.headers['content-length']).toBe(String(archive.length));
    expect(got.bytes).toBe(0);
  });

  it('answers conditional requests as NGINX does: 304 for a current copy, 412 for a failed precondition', async () => {
    const uri = await makeLink(join(archiveRoot, 'a.tar'));
    const signedUri = uri + query(uri, CUSTOMER);
    const first = await expectSameAnswer(signedUri, { localAddress: CUSTOMER, method: 'HEAD' }, 200);
    const etag = String(first.headers.etag);
    const lastModified = String(first.headers['last-modified']);
    const cases: Array<[Record<string, string>, number]> = [
      [{ 'If-None-Match': etag }, 304],
      [{ 'If-None-Match': `"x", W/${etag}` }, 304],
      [{ 'If-None-Match': '*' }, 304],
      [{ 'If-None-Match': '"other"' }, 200],
      [{ 'If-Modified-Since': lastModified }, 304],
      [{ 'If-Modified-Since': 'Mon, 01 Jan 2001 00:00:00 GMT' }, 200],
      [{ 'If-Modified-Since': 'not a date' }, 200],
      [{ 'If-Match': '"other"' }, 412],
      [{ 'If-Match': etag }, 200],
      [{ 'If-Unmodified-Since': 'Mon, 01 Jan 2001 00:00:00 GMT' }, 412],
      [{ 'If-Unmodified-Since': lastModified, 'If-None-Match': etag }, 304],
    ];
    for (const [headers, status] of cases) await expectSameAnswer(signedUri, { localAddress: CUSTOMER, headers }, status);
  });

  it('answers 403 with the same friendly page to a wrong hash, a changed expiry, a missing signature and another address', async () => {
    const uri = await makeLink(join(archiveRoot, 'a.tar'));
    const good = query(uri, CUSTOMER);
    const md5 = /md5=([^&]+)/.exec(good)![1]!;
    const flipped = good.replace(md5, `${md5.slice(0, 5)}${md5[5] === 'A' ? 'B' : 'A'}${md5.slice(6)}`);
    const later = good.replace(/expires=(\d+)/, (_, e: string) => `expires=${Number(e) + 3600}`);
    const cases: Array<[string, string]> = [
      [uri + flipped, CUSTOMER],
      [uri + later, CUSTOMER],
      [uri, CUSTOMER],
      [`${uri}?md5=${md5}`, CUSTOMER],
      [`${uri}?md5=!!&expires=1`, CUSTOMER],
      [uri + good, STRANGER],
      [uri + query(uri, CUSTOMER, Math.floor(Date.now() / 1000) - 10), STRANGER],
    ];
    for (const [path, from] of cases) {
      for (const method of ['GET', 'HEAD']) {
        const got = await expectSameAnswer(path, { localAddress: from, method }, 403);
        if (method === 'GET')
          expect(got.sha256).toBe(
            createHash('sha256')
              .update(await readFile(join(base, 'nginx', 'errors', '403.html')))
              .digest('hex'),
          );
      }
    }
  });

  it('answers 410 with the same page to an expired link, and 403 to any method but GET and HEAD, signed or not', async () => {
    const uri = await makeLink(join(archiveRoot, 'a.tar'));
    const expired = uri + query(uri, CUSTOMER, Math.floor(Date.now() / 1000) - 1);
    await expectSameAnswer(expired, { localAddress: CUSTOMER }, 410);
    await expectSameAnswer(expired, { localAddress: CUSTOMER, method: 'HEAD' }, 410);
    for (const method of ['POST', 'PUT', 'DELETE', 'OPTIONS']) {
      for (const path of [uri + query(uri, CUSTOMER), expired, uri]) await expectSameAnswer(path, { localAddress: CUSTOMER, method }, 403);
    }
  });

  it('serves nothing outside the link root: other paths, `..`, encoded dots and internal pages', async () => {
    const uri = await makeLink(join(archiveRoot, 'a.tar'));
    const dir = uri.split('/')[2]!;
    const outside = '/archives/a.tar';
    const notFound = [
      '/',
      '/dl/',
      `/dl/${dir}/`,
      `/dl/${dir}`,
      outside,
      outside + query(outside, CUSTOMER),
      `/dl/${dir}/../../archives/a.tar`,
      `/dl/${dir}/%2e%2e/%2E%2E/archives/a.tar`,
      `/dl/${dir}/${FILE}/..`,
      '/_archway_errors/403.html',
      `/dl/${dir}/.${FILE}`,
      `/dl/${dir}/sub/${FILE}`,
      `/DL/${dir}/${FILE}`,
    ];
    for (const path of notFound) await expectSameAnswer(path, { localAddress: CUSTOMER }, 404);
    // A signed link whose directory is gone (used, or swept).
    const gone = `/dl/${randomBytes(16).toString('hex')}/${FILE}`;
    await expectSameAnswer(gone + query(gone, CUSTOMER), { localAddress: CUSTOMER }, 404);
    for (const path of ['/../etc/passwd', `/dl/${dir}/%zz`, `/dl/${dir}/${FILE}%00`]) {
      await expectSameAnswer(path, { localAddress: CUSTOMER }, 400);
    }
  });

  it('reads encoded slashes as slashes, like NGINX: the decoded path is what is signed', async () => {
    const uri = await makeLink(join(archiveRoot, 'a.tar'));
    const dir = uri.split('/')[2]!;
    const got = await expectSameAnswer(`/dl/${dir}%2F${FILE}${query(uri, CUSTOMER)}`, { localAddress: CUSTOMER }, 200);
    expect(got.bytes).toBe(archive.length);
    await expectSameAnswer(`/dl%2f${dir}//${FILE}${query(uri, CUSTOMER)}`, { localAddress: CUSTOMER }, 200);
    // Signed for the encoded spelling: NGINX checks the decoded one, so the signature is wrong.
    const encoded = `/dl/${dir}%2F${FILE}`;
    await expectSameAnswer(encoded + query(encoded, CUSTOMER), { localAddress: CUSTOMER }, 403);
  });

  it('reads the signature parameters and the request target as NGINX does', async () => {
    const uri = await makeLink(join(archiveRoot, 'a.tar'));
    const expires = Math.floor(Date.now() / 1000) + 60;
    const md5 = secureLinkMd5(expires, uri, CUSTOMER, secret);
    const cases: Array<[string, number]> = [
      [`${uri}?MD5=${md5}&Expires=${expires}`, 200],
      [`${uri}?expires=${expires}&x=1&md5=${md5}`, 200],
      [`${uri}?md5=${md5}==&expires=${expires}`, 200],
      [`${uri}?md5=${md5.slice(0, -1)}&expires=${expires}`, 403],
      [`${uri}?md5=AAAA${md5.slice(4)}&md5=${md5}&expires=${expires}`, 403],
      [`${uri}?xmd5=${md5}&expires=${expires}`, 403],
      [`${uri}?md5=${secureLinkMd5(`00${expires}`, uri, CUSTOMER, secret)}&expires=00${expires}`, 200],
      [`${uri}?md5=${md5}&expires=${expires}0000000000000000000000`, 403],
      [`http://downloads.example.net${uri}?md5=${md5}&expires=${expires}`, 200],
    ];
    for (const [path, status] of cases) await expectSameAnswer(path, { localAddress: CUSTOMER }, status);
  });

  it('follows a symlink out of the link root only when its owner owns the target, as disable_symlinks if_not_owner', async () => {
    // Owned by nobody, pointing at root's archive: refused even when signed.
    const foreign = await makeLink(join(archiveRoot, 'a.tar'), { linkOwner: 65534 });
    await expectSameAnswer(foreign + query(foreign, CUSTOMER), { localAddress: CUSTOMER }, 403);
    // A link directory that is itself somebody else's symlink to a directory holding the archive.
    const dir = randomBytes(16).toString('hex');
    const elsewhere = join(base, `elsewhere-${dir}`);
    await mkdir(elsewhere);
    await owned(elsewhere, 0o750);
    await symlink(join(archiveRoot, 'a.tar'), join(elsewhere, FILE));
    await symlink(elsewhere, join(linkRoot, dir));
    await lchown(join(linkRoot, dir), 65534, 65534);
    const viaDir = `/dl/${dir}/${FILE}`;
    await expectSameAnswer(viaDir + query(viaDir, CUSTOMER), { localAddress: CUSTOMER }, 403);
    // The same owner on both ends is how the dispatcher's links look, wherever they point.
    const sameOwner = await makeLink('/etc/hostname');
    await expectSameAnswer(sameOwner + query(sameOwner, CUSTOMER), { localAddress: CUSTOMER }, 200);
    // A dangling link, and a link to itself.
    const dangling = await makeLink(join(archiveRoot, 'missing.tar'));
    await expectSameAnswer(dangling + query(dangling, CUSTOMER), { localAddress: CUSTOMER }, 404);
    const loopDir = randomBytes(16).toString('hex');
    await mkdir(join(linkRoot, loopDir));
    await owned(join(linkRoot, loopDir), 0o750);
    await symlink(FILE, join(linkRoot, loopDir, FILE));
    const loop = `/dl/${loopDir}/${FILE}`;
    await expectSameAnswer(loop + query(loop, CUSTOMER), { localAddress: CUSTOMER }, 403);
  });

  it('logs a client that stops half-way as not complete, with the bytes it was sent', async () => {
    const uri = await makeLink(join(archiveRoot, 'big.tar'));
    const got = await askBoth(uri + query(uri, CUSTOMER), { localAddress: CUSTOMER, stopAfterBytes: 1024 * 1024 });
    for (const a of [got.nginx, got.firstLook]) {
      expect(a.status).toBe(200);
      expect(a.headers['content-length']).toBe(String(BIG));
    }
    const lineFor = async (log: string) =>
      eventually(`the interrupted download in ${log}`, async () => (await watchRecords(log)).find((r) => r.uri === uri));
    const [fromNginx, fromFirstLook] = [await lineFor(nginxLog), await lineFor(firstLookLog)];
    for (const record of [fromNginx, fromFirstLook]) {
      expect(record).toMatchObject({ remote_addr: CUSTOMER, uri, status: 200, completion: '' });
      expect(record.bytes).toBeGreaterThan(0);
      expect(record.bytes).toBeLessThan(BIG);
    }
  });

  it('answers a second request for a link with 429 while the first is still being served, as limit_conn', async () => {
    const uri = await makeLink(join(archiveRoot, 'big.tar'));
    const signed = uri + query(uri, CUSTOMER);
    const expired = uri + query(uri, CUSTOMER, Math.floor(Date.now() / 1000) - 1);
    const held = [await holdDownload(nginx.baseUrl, signed), await holdDownload(firstLook.url, signed)];
    try {
      expect(held.map((h) => h.status)).toEqual([200, 200]);
      const busy = await expectSameAnswer(signed, { localAddress: CUSTOMER }, 429);
      expect(busy.sha256).toBe(
        createHash('sha256')
          .update(await readFile(join(base, 'nginx', 'errors', '429.html')))
          .digest('hex'),
      );
      await expectSameAnswer(signed, { localAddress: CUSTOMER, method: 'HEAD' }, 429);
      // The signature is checked first (rewrite phase, before limit_conn): a forged or stale link learns nothing.
      await expectSameAnswer(uri + query(uri, STRANGER), { localAddress: CUSTOMER }, 403);
      await expectSameAnswer(uri, { localAddress: CUSTOMER }, 403);
      await expectSameAnswer(expired, { localAddress: CUSTOMER }, 410);
      // limit_except's own config has no secure_link `if`s, but keeps limit_conn (preaccess runs before its deny).
      await expectSameAnswer(signed, { localAddress: CUSTOMER, method: 'POST' }, 429);
      // Another link is not held up.
      const other = await makeLink(join(archiveRoot, 'a.tar'));
      await expectSameAnswer(other + query(other, CUSTOMER), { localAddress: CUSTOMER }, 200);
    } finally {
      for (const h of held) h.drop();
    }
    // Once the first request is over (its line is in the log), the link serves again.
    for (const log of [nginxLog, firstLookLog]) {
      await eventually(`the held download in ${log}`, async () => (await watchRecords(log)).find((r) => r.uri === uri));
    }
    // NGINX writes the log line a moment before it frees the limit_conn slot; wait for the free slot.
    await eventually('NGINX to free the link', async () => ((await headStatus(nginx.baseUrl, signed)) === 429 ? undefined : true));
    expect((await expectSameAnswer(signed, { localAddress: CUSTOMER }, 200)).bytes).toBe(BIG);
    await expectSameAnswer(signed, { localAddress: CUSTOMER, method: 'POST' }, 403);
  });

  it('writes the same download log records as NGINX, for exactly the signed GETs', async () => {
    // The sentinel: one more complete download, last, so both logs are known to be written through.
    const sentinel = await makeLink(join(archiveRoot, 'a.tar'));
    await expectSameAnswer(sentinel + query(sentinel, CUSTOMER), { localAddress: CUSTOMER }, 200);
    const settled = (log: string) =>
      eventually(`the sentinel in ${log}`, async () => {
        const records = await watchRecords(log);
        return records.some((r) => r.uri === sentinel) ? records : undefined;
      });
    // Interrupted downloads differ in how many bytes left before the client went; the rest must be equal.
    const comparable = (records: Array<Record<string, unknown>>) =>
      records
        .map((r) => ((r.status === 200 || r.status === 206) && r.completion === '' ? { ...r, bytes: 'some' } : r))
        .map((r) => JSON.stringify(r))
        .sort();
    const [fromNginx, fromFirstLook] = [await settled(nginxLog), await settled(firstLookLog)];
    expect(comparable(fromFirstLook)).toEqual(comparable(fromNginx));
    // The signed GETs above that NGINX answered from the download location; never a HEAD, a 403, a 404 or a 410.
    expect(new Set(fromNginx.map((r) => r.status))).toEqual(new Set([200, 206, 304, 412, 416]));
    expect(fromNginx.every((r) => r.remote_addr === CUSTOMER)).toBe(true);
    expect(fromNginx.length).toBeGreaterThanOrEqual(8);
  });
});

describe('the first-look download server on its own', () => {
  it('refuses to start with a portal URL that would break out of the href, or a short or missing secret', async () => {
    const options = {
      host: '127.0.0.1',
      port: 0,
      linkRoot,
      secureLinkSecretFile: join(base, 'secure-link.secret'),
      accessLog: join(base, 'unused.log'),
    };
    await expect(startDownloadServer({ ...options, portalUrl: 'https://portal.example.net/"><script>alert(1)</script>' })).rejects.toThrow(
      /portal URL/,
    );
    await expect(startDownloadServer({ ...options, portalUrl: 'javascript:alert(1)' })).rejects.toThrow(/portal URL/);
    await writeFile(join(base, 'short.secret'), 'too-short\n');
    await expect(startDownloadServer({ ...options, secureLinkSecretFile: join(base, 'short.secret') })).rejects.toThrow(/shorter than 16/);
    await expect(startDownloadServer({ ...options, secureLinkSecretFile: join(base, 'missing.secret') })).rejects.toThrow(/ENOENT/);
    // An IPv6 loopback portal is a valid link target.
    const v6 = await startDownloadServer({ ...options, portalUrl: 'http://[::1]:3000/backups' });
    const page = await httpGet(`${v6.url}/nothing-here`, { localAddress: '127.0.0.1' });
    await v6.close();
    expect(page.status).toBe(404);
    expect(page.body.toString()).toContain('href="http://[::1]:3000/backups"');
  });

  it('streams a 512 MiB archive with memory that does not grow with it', async () => {
    const size = 512 * 1024 * 1024;
    await writeFile(join(archiveRoot, 'huge.tar'), '');
    await truncate(join(archiveRoot, 'huge.tar'), size);
    const uri = await makeLink(join(archiveRoot, 'huge.tar'));
    // The server runs in this process and the client (curl) outside it, so this RSS is the server's.
    const before = process.memoryUsage().rss;
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
    try {
      const curl = await run(findProgram('curl'), [
        '-s',
        '-o',
        '/dev/null',
        '--interface',
        CUSTOMER,
        '-w',
        '%{http_code} %{size_download}',
        firstLook.url + uri + query(uri, CUSTOMER),
      ]);
      expect(curl.stdout).toBe(`200 ${size}`);
    } finally {
      clearInterval(sampler);
      await rm(join(archiveRoot, 'huge.tar'));
    }
    // Garbage-collected read buffers come and go; an archive held in memory would add all 512 MiB.
    expect(peak - before, `RSS before ${before >> 20} MiB, peak ${peak >> 20} MiB`).toBeLessThan(128 * 1024 * 1024);
  });
});

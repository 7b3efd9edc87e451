// The shipped downloads vhost with its TLS server (downloads.conf.in): HSTS on every answer, redirects to its own name.
import { randomBytes } from 'node:crypto';
import { chmod, chown, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { secureLinkMd5 } from '../../src/protocol/index.js';
import { startDownloadsTlsNginx, type PrivateTlsNginx } from '../harness/nginx.js';
import { findProgram, run } from '../harness/sshd.js';
import { eventually } from './fixture.js';
import { httpGet, httpsGet } from './http-get.js';

const NAME = 'dl.example.net';
const HSTS = 'max-age=63072000';
let base: string;
let nginx: PrivateTlsNginx;
let linkRoot: string;
let archiveRoot: string;
let secret: string;

async function makeLink(): Promise<string> {
  const dir = randomBytes(16).toString('hex');
  const wwwData = Number((await run(findProgram('getent'), ['group', 'www-data'])).stdout.split(':')[2]);
  await mkdir(join(linkRoot, dir), { mode: 0o750 });
  await chown(join(linkRoot, dir), 0, wwwData);
  await symlink(join(archiveRoot, 'a.tar'), join(linkRoot, dir, 'example.org-daily.0-0123abcd.tar'));
  return `/dl/${dir}/example.org-daily.0-0123abcd.tar`;
}

const signedPath = (uri: string, expires = Math.floor(Date.now() / 1000) + 60) =>
  `${uri}?md5=${secureLinkMd5(expires, uri, '127.0.0.2', secret)}&expires=${expires}`;
const get = (path: string, localAddress = '127.0.0.2') =>
  httpsGet(nginx.httpsPort, path, { headers: { Host: NAME }, localAddress, servername: NAME });

beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'archway-dl-tls-'));
  await chmod(base, 0o755);
  archiveRoot = join(base, 'archives');
  linkRoot = join(base, 'links');
  for (const d of [archiveRoot, linkRoot]) await mkdir(d, { mode: 0o755 });
  await writeFile(join(archiveRoot, 'a.tar'), randomBytes(4096), { mode: 0o644 });
  secret = randomBytes(32).toString('base64url');
  nginx = await startDownloadsTlsNginx({
    dir: join(base, 'nginx'),
    linkRoot,
    secret,
    downloadLog: join(base, 'nginx', 'logs', 'download.log'),
    serverName: NAME,
  });
});

afterAll(async () => {
  await nginx?.stop();
  if (base) await rm(base, { recursive: true, force: true });
});

describe('the downloads TLS vhost', () => {
  it('sends one HSTS header on every answer: a download, a refused or expired link, an unknown path', async () => {
    const uri = await makeLink();
    const answers = [
      await get(signedPath(uri)),
      await get(signedPath(uri), '127.0.0.3'),
      await get(signedPath(uri, Math.floor(Date.now() / 1000) - 5)),
      await get('/favicon.ico'),
    ];
    expect(answers.map((a) => a.status)).toEqual([200, 403, 410, 404]);
    for (const a of answers)
      expect(a.raw.filter(([name]) => name === 'strict-transport-security')).toEqual([['strict-transport-security', HSTS]]);
  });

  it('redirects plain HTTP to HTTPS on its configured name, and logs no signature doing so', async () => {
    const uri = await makeLink();
    const path = signedPath(uri);
    const got = await httpGet(`http://127.0.0.1:${nginx.httpPort}${path}`, {
      localAddress: '127.0.0.2',
      headers: { Host: 'evil.example.com' },
    });
    expect(got.status).toBe(301);
    expect(got.headers.location).toBe(`https://${NAME}${path}`);
    const log = await eventually('the redirect in the access log', async () => {
      const text = await readFile(nginx.accessLog, 'utf8');
      return text.includes(`"GET ${uri}`) ? text : undefined;
    });
    expect(log).toContain(`"GET ${uri} HTTP/1.1" 301 `);
    expect(log).not.toContain('md5=');
  });
});

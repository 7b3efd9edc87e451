// The shipped portal vhost: HTTPS only, HSTS, and the portal sees the client's real address, never a forged one.
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPortalNginx, type PrivateTlsNginx } from '../harness/nginx.js';
import { httpGet, httpsGet } from './http-get.js';

let base: string;
let nginx: PrivateTlsNginx;
let upstream: Server;
let seen: IncomingHttpHeaders[] = [];
let upstreamStatus = 200;

const get = (path: string, headers: Record<string, string>) =>
  httpsGet(nginx.httpsPort, path, { headers, servername: 'portal.example.net' });

beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'archway-portal-vhost-'));
  upstream = createServer((req, res) => {
    seen.push(req.headers);
    res.writeHead(upstreamStatus, { 'content-type': 'text/plain' });
    res.end('portal');
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const upstreamPort = (upstream.address() as { port: number }).port;
  nginx = await startPortalNginx({ dir: join(base, 'nginx'), upstreamPort, serverName: 'portal.example.net' });
});

afterAll(async () => {
  await nginx?.stop();
  upstream?.close();
  if (base) await rm(base, { recursive: true, force: true });
});

describe('the portal vhost', () => {
  it('redirects plain HTTP to HTTPS, keeping the path and query, without reaching the portal', async () => {
    seen = [];
    const got = await httpGet(`http://127.0.0.1:${nginx.httpPort}/download?x=1`, {
      localAddress: '127.0.0.2',
      headers: { Host: 'portal.example.net' },
    });
    expect(got.status).toBe(301);
    expect(got.headers.location).toBe('https://portal.example.net/download?x=1');
    expect(seen).toEqual([]);
  });

  it('redirects to its configured name, whatever Host the client sent', async () => {
    const got = await httpGet(`http://127.0.0.1:${nginx.httpPort}/sign-in`, {
      localAddress: '127.0.0.2',
      headers: { Host: 'evil.example.com' },
    });
    expect(got.status).toBe(301);
    expect(got.headers.location).toBe('https://portal.example.net/sign-in');
  });

  it('proxies HTTPS to the portal with the client address, overwriting a forged X-Forwarded-For, and sends HSTS', async () => {
    seen = [];
    const got = await get('/account', { Host: 'portal.example.net', 'X-Forwarded-For': '203.0.113.66', 'X-Forwarded-Proto': 'http' });
    expect(got.status).toBe(200);
    expect(got.body).toBe('portal');
    expect(got.headers['strict-transport-security']).toBe('max-age=63072000; includeSubDomains');
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({
      'x-forwarded-for': '127.0.0.2',
      'x-forwarded-proto': 'https',
      'x-real-ip': '127.0.0.2',
      host: 'portal.example.net',
    });
  });

  it('sends HSTS on error answers too', async () => {
    upstreamStatus = 500;
    try {
      const got = await get('/', { Host: 'portal.example.net' });
      expect(got.status).toBe(500);
      expect(got.headers['strict-transport-security']).toBe('max-age=63072000; includeSubDomains');
    } finally {
      upstreamStatus = 200;
    }
  });
});

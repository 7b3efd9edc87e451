// The shipped portal vhost in front of the real portal: tokens never reach nginx's access log, and one HSTS header.
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../harness/app.js';
import { createTestDatabase, type TestDatabase } from '../harness/database.js';
import { startPortalNginx, type PrivateTlsNginx } from '../harness/nginx.js';
import { eventually } from './fixture.js';
import { httpsGet } from './http-get.js';

const NAME = 'portal.example.net';
let base: string;
let database: TestDatabase;
let portal: TestApp;
let nginx: PrivateTlsNginx;

const get = (path: string, headers: Record<string, string> = {}) =>
  httpsGet(nginx.httpsPort, path, { headers: { Host: NAME, ...headers }, servername: NAME });

/** The access log once it holds a line for each of `paths` (nginx writes a line after answering). */
async function accessLogWith(paths: string[]): Promise<string> {
  return eventually('the access log lines', async () => {
    const text = await readFile(nginx.accessLog, 'utf8').catch(() => '');
    return paths.every((p) => text.includes(`"GET ${p}`)) ? text : undefined;
  });
}

beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'archway-portal-app-'));
  database = await createTestDatabase();
  portal = await buildTestApp(database.handle, database.url);
  await portal.app.listen({ host: '127.0.0.1', port: 0 });
  const address = portal.app.server.address() as { port: number };
  nginx = await startPortalNginx({ dir: join(base, 'nginx'), upstreamPort: address.port, serverName: NAME });
});

afterAll(async () => {
  await nginx?.stop();
  await portal?.app.close();
  await database?.drop();
  if (base) await rm(base, { recursive: true, force: true });
});

describe('the portal vhost in front of the portal', () => {
  it('keeps invitation, reset and download tokens out of its access log, from the URL and from the Referer', async () => {
    const tokens = [randomBytes(32).toString('base64url'), randomBytes(32).toString('base64url'), randomBytes(32).toString('base64url')];
    const archive = randomUUID();
    expect((await get(`/set-password?token=${tokens[0]}`)).status).toBeLessThan(500);
    expect((await get(`/downloads/${archive}?t=${tokens[1]}`)).status).toBeLessThan(500);
    expect((await get('/sign-in', { Referer: `https://${NAME}/set-password?token=${tokens[2]}` })).status).toBe(200);
    const log = await accessLogWith(['/set-password', `/downloads/${archive}`, '/sign-in']);
    expect(log).toMatch(/^127\.0\.0\.2 - - \[[^\]]+\] "GET \/set-password HTTP\/1\.1" \d{3} \d+ "-" "-"$/m);
    expect(log).toMatch(new RegExp(`"GET /downloads/${archive} HTTP/1\\.1" 30\\d `));
    expect(log).toContain(`"GET /sign-in HTTP/1.1" 200 `);
    expect(log).toContain(`"https://${NAME}/set-password"`);
    for (const token of tokens) expect(log).not.toContain(token);
    expect(log).not.toContain('token=');
    expect(log).not.toContain('t=');
  });

  it("sends exactly one HSTS header, nginx's, on the portal's pages and on its redirects", async () => {
    for (const path of ['/sign-in', `/downloads/${randomUUID()}`, '/no-such-page']) {
      const got = await get(path);
      expect(got.raw.filter(([name]) => name === 'strict-transport-security')).toEqual([
        ['strict-transport-security', 'max-age=63072000; includeSubDomains'],
      ]);
    }
  });
});

// The shipped portal vhost never lets /metrics through, in any spelling, even with the right token.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpsGet } from '../backup-host/http-get.js';
import { startPortalWorld, type PortalWorld } from '../harness/world.js';
import { startPortalNginx, type PrivateTlsNginx } from '../harness/nginx.js';
import { parseExposition, TOKEN } from './exposition.js';

const NAME = 'portal.example.net';
let base: string;
let portal: PortalWorld;
let nginx: PrivateTlsNginx;

beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'archway-metrics-vhost-'));
  portal = await startPortalWorld({ listen: true, env: { ARCHWAY_METRICS_TOKEN: TOKEN } });
  nginx = await startPortalNginx({ dir: join(base, 'nginx'), upstreamPort: Number(new URL(portal.origin).port), serverName: NAME });
});

afterAll(async () => {
  await nginx?.stop();
  await portal?.close();
  if (base) await rm(base, { recursive: true, force: true });
});

const viaNginx = (path: string) =>
  httpsGet(nginx.httpsPort, path, { headers: { Host: NAME, Authorization: `Bearer ${TOKEN}` }, servername: NAME });

/** Requests the portal has answered so far, read straight from the portal (not counting this scrape itself). */
async function answeredByPortal(): Promise<number> {
  const answer = await portal.app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${TOKEN}` } });
  expect(answer.statusCode).toBe(200);
  return parseExposition(answer.body)
    .filter((s) => s.name === 'archway_http_requests_total')
    .reduce((sum, s) => sum + s.value, 0);
}

describe('the portal vhost and /metrics', () => {
  it('answers 404 itself for /metrics however it is spelled, and the portal never sees the request', async () => {
    const before = await answeredByPortal();
    for (const path of [
      '/metrics',
      '/metrics/',
      '/metrics?format=text',
      '/METRICS',
      '//metrics',
      '/%6Detrics',
      '/./metrics',
      '/x/../metrics',
    ]) {
      const got = await viaNginx(path);
      expect(got.status, path).toBe(404);
      expect(got.body, path).not.toContain('archway_');
    }
    // The one request the portal saw in between is the scrape above; a page through nginx still arrives (the sentinel).
    expect(await answeredByPortal()).toBe(before + 1);
    expect((await viaNginx('/sign-in')).status).toBe(200);
    expect(await answeredByPortal()).toBe(before + 3);
  });

  it('the same token works straight at the portal instance, where Prometheus scrapes', async () => {
    const address = portal.app.server.address() as { port: number };
    const answer = await fetch(`http://127.0.0.1:${address.port}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(answer.status).toBe(200);
    expect(await answer.text()).toContain('\n# TYPE archway_database_up gauge\n');
  });
});

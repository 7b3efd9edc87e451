// The real `archway serve` opens the metrics listener next to the portal's and closes it when it stops.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startServer } from '../harness/cli.js';
import { metricsAddressIn, parseExposition, PROMETHEUS_TEXT, valueOf } from './exposition.js';

const cwd = mkdtempSync(path.join(tmpdir(), 'archway-metrics-serve-'));
afterAll(() => rmSync(cwd, { recursive: true, force: true }));

describe('archway serve with ARCHWAY_METRICS_LISTEN', () => {
  it('serves /metrics on its own address only, reads the embedded database, and stops it with the portal', async () => {
    const server = await startServer({ cwd, env: { ARCHWAY_METRICS_LISTEN: '127.0.0.1:0' } });
    let address: string | undefined;
    try {
      address = metricsAddressIn(server.output());
      expect(address).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect(address).not.toBe(server.url);
      expect((await fetch(`${server.url}/sign-in`)).status).toBe(200);

      const answer = await fetch(`${address}/metrics`);
      expect(answer.status).toBe(200);
      expect(answer.headers.get('content-type')).toBe(PROMETHEUS_TEXT);
      const samples = parseExposition(await answer.text());
      expect(valueOf(samples, 'archway_database_up')).toBe(1);
      expect(valueOf(samples, 'archway_http_requests_total', { method: 'GET', route: '/sign-in', status: '200' })).toBe(1);
      expect(valueOf(samples, 'archway_archive_requests', { state: 'building' })).toBe(0);

      expect((await fetch(`${server.url}/metrics`)).status).toBe(404);
    } finally {
      expect(await server.stop('SIGTERM')).toBe(0);
    }
    await expect(fetch(`${address}/metrics`)).rejects.toThrow();
  }, 90_000);
});

// A scrape while the database is silent still answers, says archway_database_up 0, and never piles up connections.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectDatabase, type DatabaseHandle } from '../../src/db/connect.js';
import { buildTestApp, type TestApp } from '../harness/app.js';
import { createTestDatabase, type TestDatabase } from '../harness/database.js';
import { eventually } from '../harness/eventually.js';
import { startTcpProxy, type TcpProxy } from '../harness/tcp-proxy.js';
import { parseExposition, PROMETHEUS_TEXT, TOKEN, valueOf } from './exposition.js';

let database: TestDatabase;
let proxy: TcpProxy;
let handle: DatabaseHandle;
let subject: TestApp;

beforeAll(async () => {
  database = await createTestDatabase();
  proxy = await startTcpProxy({ host: '127.0.0.1', port: Number(new URL(database.url).port) });
  // A query stuck in the partition waits longer than the test may run: only the scrape's own bound can end its wait.
  handle = await connectDatabase({
    databaseUrl: proxy.urlFor(database.url),
    dataDir: '/nonexistent',
    poolSize: 4,
    limits: { queryMs: 120_000 },
  });
  subject = await buildTestApp(handle, proxy.urlFor(database.url), { ARCHWAY_METRICS_TOKEN: TOKEN });
  await subject.app.ready();
});
afterAll(async () => {
  proxy?.resume();
  await subject?.app.close();
  await proxy?.close();
  await database?.drop();
});

const scrape = () => subject.app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${TOKEN}` } });

describe('a scrape while the database does not answer', () => {
  it('answers with archway_database_up 0 and no database values, reuses the one stuck read, and recovers', async () => {
    const up = await scrape();
    expect(valueOf(parseExposition(up.body), 'archway_database_up')).toBe(1);

    proxy.silence();
    const held = proxy.heldBytes();
    const connections = proxy.connections();
    // The stuck read lasts until the connection is cut: an answer now proves the scrape does not wait for it.
    const during = await scrape();
    expect(proxy.heldBytes()).toBeGreaterThan(held);
    expect(during.statusCode).toBe(200);
    expect(during.headers['content-type']).toBe(PROMETHEUS_TEXT);
    const samples = parseExposition(during.body);
    expect(valueOf(samples, 'archway_database_up')).toBe(0);
    expect(valueOf(samples, 'archway_mail_queue_depth')).toBeNaN();
    expect(valueOf(samples, 'archway_mail_queue_oldest_age_seconds')).toBeNaN();
    for (const name of [
      'archway_archive_requests',
      'archway_active_blocks',
      'archway_archive_builds_in_progress',
      'archway_backup_host_up',
    ]) {
      expect(samples.filter((s) => s.name === name)).toEqual([]);
    }
    // What needs no database still counts.
    expect(valueOf(samples, 'archway_password_hash_queue_length')).toBe(0);
    expect(samples.some((s) => s.name === 'archway_http_requests_total' && s.labels.route === '/metrics')).toBe(true);

    // A second scrape joins the read still stuck in the partition instead of taking another connection.
    const again = await scrape();
    expect(valueOf(parseExposition(again.body), 'archway_database_up')).toBe(0);
    expect(proxy.connections()).toBe(connections);

    // Once the stuck read has failed (its connection reset), the next scrape reads afresh.
    proxy.resume();
    proxy.cut();
    await eventually(
      'archway_database_up 1 again',
      async () => valueOf(parseExposition((await scrape()).body), 'archway_database_up') === 1,
    );
  }, 60_000);
});

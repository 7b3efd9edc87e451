// A silent network partition between the portal and PostgreSQL: every request ends within a bound, and the pool recovers.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectDatabase, type DatabaseHandle } from '../../src/db/connect.js';
import { buildTestApp, type TestApp } from '../harness/app.js';
import { createTestDatabase, type TestDatabase } from '../harness/database.js';
import { startTcpProxy, type TcpProxy } from '../harness/tcp-proxy.js';
import { WebClient } from '../harness/web-client.js';
import { createUser, PASSWORD } from '../harness/users.js';

let database: TestDatabase;
let proxy: TcpProxy;
let handle: DatabaseHandle;
let subject: TestApp;

beforeAll(async () => {
  database = await createTestDatabase();
  proxy = await startTcpProxy({ host: '127.0.0.1', port: Number(new URL(database.url).port) });
  // The production limits, shortened so the test does not wait 15 s per query.
  handle = await connectDatabase({
    databaseUrl: proxy.urlFor(database.url),
    dataDir: '/nonexistent',
    poolSize: 4,
    limits: { connectMs: 1_000, queryMs: 1_500 },
  });
  subject = await buildTestApp(handle, proxy.urlFor(database.url));
  await subject.app.ready();
});
afterAll(async () => {
  await subject.app.close();
  await proxy.close();
  await database.drop();
});

describe('a database that stops answering without closing its sockets', () => {
  it('ends every waiting request with the "try again" page, more requests than the pool holds, and serves again once it answers', async () => {
    const user = await createUser(subject.app);
    const client = new WebClient(subject.app);
    expect((await client.signIn(user.email, PASSWORD)).status).toBe(303);
    await client.get('/sign-in');

    proxy.silence();
    // Ten page loads and two sign-ins against a pool of four connections.
    const pages = Array.from({ length: 10 }, () => client.get('/account'));
    const signIns = Array.from({ length: 2 }, () => new WebClient(subject.app).signIn(user.email, PASSWORD));
    const answers = await Promise.all([...pages, ...signIns]);
    for (const answer of answers) {
      expect(answer.status).toBe(503);
      expect(answer.headers['retry-after']).toBe('30');
      expect(answer.body).toContain('please try again in a minute');
    }

    proxy.resume();
    const after = await client.get('/account');
    expect(after.status).toBe(200);
    expect(after.body).toContain(user.email);
  }, 60_000);
});

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { AdjustableClock } from '../../src/clock.js';
import { loadConfig, type Config, type Secrets } from '../../src/config.js';
import { TEST_SECRETS } from '../harness/app.js';
import { createTestDatabase, type TestDatabase } from '../harness/database.js';
import { WebClient } from '../harness/web-client.js';
import { createOperator, createUser, PASSWORD, signInOperator } from '../harness/users.js';

// First-look mode (no SMTP relay: mail goes to the outbox folder), on the test's PostgreSQL database.
let database: TestDatabase;
let app: FastifyInstance;
let dataDir: string;

beforeAll(async () => {
  database = await createTestDatabase();
  dataDir = await mkdtemp(path.join(tmpdir(), 'archway-outbox-'));
  const config = loadConfig({ ...TEST_SECRETS, ARCHWAY_DATA_DIR: dataDir, ARCHWAY_LOG_LEVEL: 'silent' }) as Config & { secrets: Secrets };
  expect(config.mode).toBe('first-look');
  app = await buildApp({ config, database: database.handle, clock: new AdjustableClock() });
  await app.ready();
});
afterAll(async () => {
  await app.close();
  await database.drop();
  await rm(dataDir, { recursive: true, force: true });
});

describe('the operator area in first-look mode', () => {
  it('links the outbox for the operator and lets the operator open it', async () => {
    const { operator, secret } = await createOperator(app);
    const client = new WebClient(app);
    await signInOperator(app, client, operator.email, secret);
    const page = await client.get('/operator');
    expect(page.status).toBe(200);
    expect(page.body).toContain('<a href="/operator/outbox">outbox</a>');
    const outbox = await client.get('/operator/outbox');
    expect(outbox.status).toBe(200);
  });

  it("keeps the outbox from customers and visitors, who could read everyone's reset links there", async () => {
    const visitor = await new WebClient(app).get('/operator/outbox');
    expect(visitor.status).toBe(303);
    expect(visitor.location).toBe('/sign-in?next=%2Foperator%2Foutbox');

    const customer = await createUser(app);
    const client = new WebClient(app);
    await client.signIn(customer.email, PASSWORD);
    const page = await client.get('/operator/outbox');
    // The same 404 as an unknown page: the operator area does not reveal itself to a customer.
    expect(page.status).toBe(404);
    expect(page.body).not.toContain('Outbox');
  });
});

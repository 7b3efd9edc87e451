// /metrics as Prometheus and an attacker see it: behind its token, in the text format, by route pattern, from real rows.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../harness/app.js';
import { createTestDatabase, type TestDatabase } from '../harness/database.js';
import { createUser, currentCode, PASSWORD, turnOnTwoFactor } from '../harness/users.js';
import { WebClient } from '../harness/web-client.js';
import { metricsAddressIn, parseExposition, PROMETHEUS_TEXT, TOKEN, valueOf, type Sample } from './exposition.js';

let database: TestDatabase;
let withToken: TestApp;
let withListener: TestApp;
let without: TestApp;
let listenerWithToken: TestApp;

beforeAll(async () => {
  database = await createTestDatabase();
  withToken = await buildTestApp(database.handle, database.url, {
    ARCHWAY_METRICS_TOKEN: TOKEN,
    ARCHWAY_HASH_CONCURRENCY: '1',
    ARCHWAY_SIGNIN_USER_MAX_FAILURES: '3',
  });
  withListener = await buildTestApp(database.handle, database.url, { ARCHWAY_METRICS_LISTEN: '127.0.0.1:0' });
  without = await buildTestApp(database.handle, database.url);
  listenerWithToken = await buildTestApp(database.handle, database.url, {
    ARCHWAY_METRICS_LISTEN: '127.0.0.1:0',
    ARCHWAY_METRICS_TOKEN: TOKEN,
  });
  await withListener.app.ready();
  await listenerWithToken.app.ready();
});

afterAll(async () => {
  // The apps share one handle; the last close ends the pool.
  await listenerWithToken?.app.close();
  await without?.app.close();
  await withListener?.app.close();
  await withToken?.app.close();
  await database?.drop();
});

const scrapeAs = (authorization?: string, url = '/metrics') =>
  withToken.app.inject({ method: 'GET', url, headers: authorization === undefined ? {} : { authorization } });

async function scrape(): Promise<Sample[]> {
  const answer = await scrapeAs(`Bearer ${TOKEN}`);
  expect(answer.statusCode).toBe(200);
  return parseExposition(answer.body);
}

describe('/metrics behind a bearer token on the main listener', () => {
  it('refuses a scrape without the token, with a wrong one, or with the token elsewhere than the header, naming no metric', async () => {
    const tries = [
      await scrapeAs(),
      await scrapeAs(`Bearer ${TOKEN.slice(0, -1)}x`),
      await scrapeAs(`Bearer ${TOKEN}x`),
      await scrapeAs(`Basic ${Buffer.from(`prometheus:${TOKEN}`).toString('base64')}`),
      await scrapeAs(TOKEN),
      await scrapeAs(undefined, `/metrics?token=${TOKEN}`),
    ];
    for (const answer of tries) {
      expect(answer.statusCode).toBe(401);
      expect(answer.headers['www-authenticate']).toBe('Bearer realm="metrics"');
      expect(answer.body).toBe('Unauthorized\n');
    }
    expect(withToken.logText()).toContain('metrics scrape refused: missing or wrong bearer token');
    expect(withToken.logText()).not.toContain(TOKEN);
  });

  it('answers the right token with the text format, every line parsing, and each documented metric described', async () => {
    const answer = await scrapeAs(`Bearer ${TOKEN}`);
    expect(answer.statusCode).toBe(200);
    expect(answer.headers['content-type']).toBe(PROMETHEUS_TEXT);
    expect(answer.headers['cache-control']).toBe('no-store');
    const samples = parseExposition(answer.body);
    for (const [name, type] of [
      ['archway_http_requests_total', 'counter'],
      ['archway_http_request_duration_seconds', 'histogram'],
      ['archway_sign_in_attempts_total', 'counter'],
      ['archway_second_step_attempts_total', 'counter'],
      ['archway_password_hash_queue_length', 'gauge'],
      ['archway_database_up', 'gauge'],
      ['archway_active_blocks', 'gauge'],
      ['archway_archive_requests', 'gauge'],
      ['archway_archive_builds_in_progress', 'gauge'],
      ['archway_mail_queue_depth', 'gauge'],
      ['archway_mail_queue_oldest_age_seconds', 'gauge'],
      ['archway_event_sync_lag_seconds', 'gauge'],
      ['archway_backup_host_up', 'gauge'],
      ['process_resident_memory_bytes', 'gauge'],
    ]) {
      expect(answer.body).toMatch(new RegExp(`^# HELP ${name} \\S.*$`, 'm'));
      expect(answer.body).toContain(`\n# TYPE ${name} ${type}\n`);
    }
    expect(valueOf(samples, 'archway_database_up')).toBe(1);
    expect(valueOf(samples, 'archway_archive_requests', { state: 'ready' })).toBe(0);
  });

  it('counts a failed and a successful sign-in and the pages they loaded, by route pattern and status', async () => {
    const user = await createUser(withToken.app);
    const before = await scrape();
    const count = (samples: Sample[], name: string, labels: Record<string, string>) => valueOf(samples, name, labels) ?? 0;

    expect((await new WebClient(withToken.app).signIn(user.email, 'not-the-password')).status).toBe(401);
    expect((await new WebClient(withToken.app).signIn(user.email, PASSWORD)).status).toBe(303);

    const after = await scrape();
    for (const outcome of ['failure', 'success']) {
      const name = 'archway_sign_in_attempts_total';
      expect(count(after, name, { outcome }) - count(before, name, { outcome })).toBe(1);
    }
    const requests = (samples: Sample[], method: string, status: string) =>
      count(samples, 'archway_http_requests_total', { method, route: '/sign-in', status });
    expect(requests(after, 'GET', '200') - requests(before, 'GET', '200')).toBe(2);
    expect(requests(after, 'POST', '401') - requests(before, 'POST', '401')).toBe(1);
    expect(requests(after, 'POST', '303') - requests(before, 'POST', '303')).toBe(1);
    const observed = (samples: Sample[]) =>
      count(samples, 'archway_http_request_duration_seconds_count', { method: 'POST', route: '/sign-in' });
    expect(observed(after) - observed(before)).toBe(2);
  });

  it('counts second sign-in steps by outcome: a wrong code, then the right one', async () => {
    const user = await createUser(withToken.app);
    const secret = await turnOnTwoFactor(withToken.app, user.id);
    const steps = (samples: Sample[], outcome: string) => valueOf(samples, 'archway_second_step_attempts_total', { outcome }) ?? 0;
    const before = await scrape();
    const client = new WebClient(withToken.app);
    expect((await client.signIn(user.email, PASSWORD)).location).toBe('/sign-in/two-factor');
    await client.get('/sign-in/two-factor');
    const right = currentCode(withToken.app, secret);
    expect((await client.post('/sign-in/two-factor', { code: right === '000000' ? '111111' : '000000' })).status).toBe(401);
    expect((await client.post('/sign-in/two-factor', { code: right })).status).toBe(303);
    const after = await scrape();
    expect(steps(after, 'wrong') - steps(before, 'wrong')).toBe(1);
    expect(steps(after, 'success') - steps(before, 'success')).toBe(1);
  });

  it('labels a request by its route pattern, never by the id or token in its URL', async () => {
    const id = randomUUID();
    const secret = randomUUID();
    await withToken.app.inject({ method: 'GET', url: `/archives/${id}?t=${secret}` });
    await withToken.app.inject({ method: 'GET', url: `/no-such-page/${secret}` });
    const answer = await scrapeAs(`Bearer ${TOKEN}`);
    expect(answer.body).not.toContain(id);
    expect(answer.body).not.toContain(secret);
    const samples = parseExposition(answer.body);
    expect(samples.some((s) => s.name === 'archway_http_requests_total' && s.labels.route === '/archives/:id')).toBe(true);
    expect(valueOf(samples, 'archway_http_requests_total', { method: 'GET', route: '(unmatched)', status: '404' })).toBeGreaterThanOrEqual(
      1,
    );
  });

  it('shows a sign-in block while it is in force', async () => {
    const user = await createUser(withToken.app);
    const blocked = (samples: Sample[]) => valueOf(samples, 'archway_active_blocks', { kind: 'sign_in', scope: 'user' });
    expect(blocked(await scrape())).toBe(0);
    for (let i = 0; i < 3; i++) await new WebClient(withToken.app).signIn(user.email, 'wrong-password');
    const during = await scrape();
    expect(blocked(during)).toBe(1);
    expect(valueOf(during, 'archway_active_blocks', { kind: 'second_step', scope: 'user' })).toBe(0);
    withToken.clock.advanceMinutes(20);
    expect(blocked(await scrape())).toBe(0);
  });

  it('reports the mail queue from its rows: how many wait and how long the oldest has waited', async () => {
    const depth = (samples: Sample[]) => valueOf(samples, 'archway_mail_queue_depth');
    const before = await scrape();
    await withToken.app.ctx.mail.enqueue(withToken.app.ctx.db, {
      to: 'one@example.net',
      template: 'recovery-code-used',
      data: { email: 'one@example.net', at: 'now', left: 1, total: 10 },
    });
    await withToken.app.ctx.mail.enqueue(withToken.app.ctx.db, {
      to: 'two@example.net',
      template: 'recovery-code-used',
      data: { email: 'two@example.net', at: 'now', left: 1, total: 10 },
    });
    withToken.clock.advanceMinutes(30);
    // The rows were stamped by the database's clock; the app's clock runs ahead by what the tests moved it.
    const waitedSeconds = (withToken.clock.now().getTime() - Date.now()) / 1000;
    const after = await scrape();
    expect(depth(after)! - depth(before)!).toBe(2);
    expect(valueOf(after, 'archway_mail_queue_oldest_age_seconds')).toBeGreaterThanOrEqual(waitedSeconds);
    expect(valueOf(after, 'archway_mail_queue_oldest_age_seconds')).toBeLessThan(waitedSeconds + 60);

    await withToken.app.ctx.db
      .updateTable('mail_queue')
      .set({ status: 'sent', finished_at: new Date(), body: null })
      .where('status', '=', 'pending')
      .execute();
    const sent = await scrape();
    expect(depth(sent)).toBe(0);
    expect(valueOf(sent, 'archway_mail_queue_oldest_age_seconds')).toBe(0);
  });

  it('reports archive requests by state, builds in progress, and the event sync of each backup host', async () => {
    const user = await createUser(withToken.app);
    const other = await createUser(withToken.app);
    const db = withToken.app.ctx.db;
    await db
      .insertInto('archive_requests')
      .values({ user_id: user.id, customer: user.domain!, snapshot: 'daily.0', state: 'building' })
      .execute();
    await db
      .insertInto('archive_requests')
      .values({ user_id: other.id, customer: other.domain!, snapshot: 'daily.0', state: 'failed' })
      .execute();
    const now = withToken.clock.now();
    await db
      .insertInto('backup_host_sync')
      .values({ host: 'default', last_seq: 7, synced_at: new Date(now.getTime() - 90_000), last_error: null })
      .execute();

    const samples = await scrape();
    expect(valueOf(samples, 'archway_archive_requests', { state: 'building' })).toBe(1);
    expect(valueOf(samples, 'archway_archive_requests', { state: 'failed' })).toBe(1);
    expect(valueOf(samples, 'archway_archive_builds_in_progress', { host: 'default' })).toBe(1);
    expect(valueOf(samples, 'archway_backup_host_up', { host: 'default' })).toBe(1);
    const lag = valueOf(samples, 'archway_event_sync_lag_seconds', { host: 'default' })!;
    expect(lag).toBeGreaterThanOrEqual(90);
    expect(lag).toBeLessThan(120);

    await db.updateTable('backup_host_sync').set({ last_error: 'connect ECONNREFUSED' }).where('host', '=', 'default').execute();
    expect(valueOf(await scrape(), 'archway_backup_host_up', { host: 'default' })).toBe(0);
  });

  it('shows password hashes waiting for a slot', async () => {
    const hashes = [
      withToken.app.ctx.passwords.hash('one'),
      withToken.app.ctx.passwords.hash('two'),
      withToken.app.ctx.passwords.hash('three'),
    ];
    // One slot (ARCHWAY_HASH_CONCURRENCY=1): the first hashes, two wait; the gauge is read as the scrape starts.
    const waiting = valueOf(await scrape(), 'archway_password_hash_queue_length');
    await Promise.all(hashes);
    expect(waiting).toBe(2);
    expect(valueOf(await scrape(), 'archway_password_hash_queue_length')).toBe(0);
  });
});

describe('/metrics on its own listen address', () => {
  it('is served there, and not on the main listener even with a bearer header', async () => {
    const address = metricsAddressIn(withListener.logText());
    expect(address).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const answer = await fetch(`${address}/metrics`);
    expect(answer.status).toBe(200);
    expect(answer.headers.get('content-type')).toBe(PROMETHEUS_TEXT);
    const samples = parseExposition(await answer.text());
    expect(valueOf(samples, 'archway_database_up')).toBe(1);

    const main = await withListener.app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${TOKEN}` } });
    expect(main.statusCode).toBe(404);
    expect(main.body).not.toContain('archway_');
    expect((await fetch(`${address}/sign-in`)).status).toBe(404);
  });
});

describe('/metrics on its own listen address with a token too', () => {
  it('asks that listener for the token as well', async () => {
    const address = metricsAddressIn(listenerWithToken.logText());
    const refused = await fetch(`${address}/metrics`, { headers: { authorization: `Bearer ${TOKEN.slice(1)}` } });
    expect(refused.status).toBe(401);
    expect(await refused.text()).toBe('Unauthorized\n');
    const answer = await fetch(`${address}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(answer.status).toBe(200);
    expect(await answer.text()).toContain('\n# TYPE archway_database_up gauge\n');
  });
});

describe('/metrics with neither a listen address nor a token', () => {
  it('does not exist: the ordinary 404 page, whatever the request carries', async () => {
    for (const headers of [{}, { authorization: `Bearer ${TOKEN}` }]) {
      const answer = await without.app.inject({ method: 'GET', url: '/metrics', headers });
      expect(answer.statusCode).toBe(404);
      expect(answer.headers['content-type']).toContain('text/html');
      expect(answer.body).not.toContain('archway_');
    }
  });
});

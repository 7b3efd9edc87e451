import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp } from '../harness/app.js';
import { createTestDatabase } from '../harness/database.js';
import { startPortalWorld, type PortalWorld } from '../harness/world.js';
import { WebClient } from '../harness/web-client.js';
import { createUser, PASSWORD } from '../harness/users.js';

// Production shape: Archway behind the TLS proxy at 10.0.0.2, which sets X-Forwarded-For/-Proto.
const PROXY = '10.0.0.2';
const VIA_PROXY = { remoteAddress: PROXY, headers: { 'x-forwarded-proto': 'https', 'x-forwarded-for': '198.51.100.23' } };

let subject: PortalWorld;

beforeAll(async () => {
  subject = await startPortalWorld({
    env: {
      ARCHWAY_REQUIRE_HTTPS: 'true',
      ARCHWAY_TRUST_PROXY: `${PROXY},10.0.1.0/24`,
      ARCHWAY_PUBLIC_URL: 'https://portal.example.net',
    },
  });
});
afterAll(async () => {
  await subject.close();
});

describe('HTTPS behind the trusted proxy', () => {
  it('sets a __Host- cookie that is Secure, HttpOnly, SameSite=Lax, Path=/ and has no Domain', async () => {
    const user = await createUser(subject.app);
    const client = new WebClient(subject.app, VIA_PROXY);
    const form = await client.get('/sign-in');
    const csrfCookie = [form.headers['set-cookie']].flat().find((c) => c?.startsWith('__Host-archway-csrf='));
    expect(csrfCookie).toMatch(/^__Host-archway-csrf=[^;]+; Path=\/; HttpOnly; Secure; SameSite=Lax$/);
    const answer = await client.post('/sign-in', { email: user.email, password: PASSWORD });
    expect(answer.status).toBe(303);
    const cookies = [answer.headers['set-cookie']].flat() as string[];
    const session = cookies.find((c) => c.startsWith('__Host-archway-session='))!;
    expect(session).toMatch(/^__Host-archway-session=[^;]+; Path=\/; HttpOnly; Secure; SameSite=Lax$/);
    expect([...client.cookies.keys()].sort()).toEqual(['__Host-archway-csrf', '__Host-archway-session']);
    expect(answer.headers['strict-transport-security']).toBe('max-age=31536000; includeSubDomains');
  });

  it('takes the client address from the proxy header, and records it', async () => {
    const user = await createUser(subject.app);
    await new WebClient(subject.app, VIA_PROXY).signIn(user.email, PASSWORD);
    const row = await subject.app.ctx.database.db
      .selectFrom('sign_in_attempts')
      .select(['ip', 'outcome'])
      .where('user_id', '=', user.id)
      .executeTakeFirstOrThrow();
    expect(row).toEqual({ ip: '198.51.100.23', outcome: 'success' });
  });

  it('believes a proxy from a trusted range, too', async () => {
    const user = await createUser(subject.app);
    await new WebClient(subject.app, {
      remoteAddress: '10.0.1.9',
      headers: { 'x-forwarded-proto': 'https', 'x-forwarded-for': '203.0.113.77' },
    }).signIn(user.email, PASSWORD);
    const row = await subject.app.ctx.database.db
      .selectFrom('sign_in_attempts')
      .select('ip')
      .where('user_id', '=', user.id)
      .executeTakeFirstOrThrow();
    expect(row.ip).toBe('203.0.113.77');
  });

  it('ignores X-Forwarded-For and -Proto from a peer that is not a trusted proxy', async () => {
    const spoofer = { remoteAddress: '203.0.113.50', headers: { 'x-forwarded-proto': 'https', 'x-forwarded-for': '10.9.9.9' } };
    const page = await new WebClient(subject.app, spoofer).get('/sign-in');
    // Its "https" is not believed: the request is plain HTTP and is sent to the https address.
    expect(page.status).toBe(301);
    expect(page.location).toBe('https://portal.example.net/sign-in');
  });

  it("records the peer's own address when an untrusted peer claims another in X-Forwarded-For", async () => {
    // A portal that also accepts plain HTTP (as in first-look mode), so the spoofer's request gets through to sign-in.
    const db = await createTestDatabase();
    const open = await buildTestApp(db.handle, db.url, { ARCHWAY_TRUST_PROXY: PROXY });
    try {
      const user = await createUser(open.app);
      const spoofer = new WebClient(open.app, { remoteAddress: '203.0.113.50', headers: { 'x-forwarded-for': '10.9.9.9' } });
      await spoofer.signIn(user.email, 'Wrong-Password-1');
      const trusted = new WebClient(open.app, { remoteAddress: PROXY, headers: { 'x-forwarded-for': '198.51.100.99' } });
      await trusted.signIn(user.email, 'Wrong-Password-2');
      const rows = await open.app.ctx.database.db
        .selectFrom('sign_in_attempts')
        .select(['ip', 'reason'])
        .where('user_id', '=', user.id)
        .orderBy('id')
        .execute();
      expect(rows).toEqual([
        { ip: '203.0.113.50', reason: 'wrong_password' },
        { ip: '198.51.100.99', reason: 'wrong_password' },
      ]);
    } finally {
      await open.app.close();
      await db.drop();
    }
  });

  it('sends a plain-HTTP GET to the https address of the portal, never to the Host it was given', async () => {
    const page = await subject.app.inject({
      url: '/sign-in?next=%2Faccount',
      remoteAddress: PROXY,
      headers: { 'x-forwarded-proto': 'http', host: 'evil.example' },
    });
    expect(page.statusCode).toBe(301);
    expect(page.headers.location).toBe('https://portal.example.net/sign-in?next=%2Faccount');
    expect(page.headers['set-cookie']).toBeUndefined();
  });

  it('refuses a plain-HTTP POST outright and changes nothing', async () => {
    const user = await createUser(subject.app);
    const answer = await subject.app.inject({
      method: 'POST',
      url: '/sign-in',
      remoteAddress: PROXY,
      headers: { 'x-forwarded-proto': 'http', 'content-type': 'application/x-www-form-urlencoded' },
      payload: `email=${encodeURIComponent(user.email)}&password=${PASSWORD}`,
    });
    expect(answer.statusCode).toBe(403);
    expect(answer.body).toContain('This portal only answers over HTTPS.');
    expect(await subject.app.ctx.database.db.selectFrom('sign_in_attempts').select('id').where('user_id', '=', user.id).execute()).toEqual(
      [],
    );
  });

  it('still answers health probes over plain HTTP', async () => {
    expect((await subject.app.inject({ url: '/healthz' })).statusCode).toBe(200);
    expect((await subject.app.inject({ url: '/readyz' })).statusCode).toBe(200);
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectDatabase } from '../../src/db/connect.js';
import { buildTestApp } from '../harness/app.js';
import { createTestDatabase } from '../harness/database.js';
import { startPortalWorld, type PortalWorld } from '../harness/world.js';
import { createUser, PASSWORD } from '../harness/users.js';
import { WebClient } from '../harness/web-client.js';

let subject: PortalWorld;

beforeAll(async () => {
  subject = await startPortalWorld({
    testRoutes: (app) =>
      app.get('/test/explode', async () => {
        throw new Error('connection to 10.0.0.7 failed: password authentication failed for user "archway"');
      }),
  });
});
afterAll(async () => subject.close());

describe('the web skeleton', () => {
  it('says the process is up on /healthz', async () => {
    const res = await subject.app.inject({ url: '/healthz' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ status: 'ok' });
    expect(res.headers['cache-control']).toBe('no-store');
  });

  it('says the database is reachable on /readyz', async () => {
    const res = await subject.app.inject({ url: '/readyz' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ status: 'ready', database: 'reachable' });
  });

  it('answers /readyz with 503 when the database is down', async () => {
    // A port nothing listens on stands for a database server that went away.
    const gone = await connectDatabase({ databaseUrl: 'postgres://postgres@127.0.0.1:9/none', dataDir: '/nonexistent' });
    const down = await buildTestApp(gone, 'postgres://postgres@127.0.0.1:9/none');
    try {
      const res = await down.app.inject({ url: '/readyz' });
      expect(res.statusCode).toBe(503);
      expect(res.json()).toEqual({ status: 'unavailable', database: 'unreachable' });
      expect((await down.app.inject({ url: '/healthz' })).statusCode).toBe(200);
    } finally {
      await down.app.close();
    }
  });

  it('serves the start page as HTML with the security headers', async () => {
    const res = await subject.app.inject({ url: '/' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(res.body).toContain('<h1>Your backups, on request</h1>');
    expect(res.body).not.toContain('First-look mode');
    expect(res.headers['content-security-policy']).toContain("script-src 'self'");
    expect(res.headers['content-security-policy']).toContain("frame-ancestors 'none'");
    expect(res.headers['referrer-policy']).toBe('no-referrer');
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.headers['strict-transport-security']).toBe('max-age=31536000; includeSubDomains');
  });

  it('lets no cache keep a page, signed in or not, but lets browsers cache the public files', async () => {
    const user = await createUser(subject.app);
    const client = new WebClient(subject.app);
    const signIn = await client.signIn(user.email, PASSWORD);
    expect(signIn.status).toBe(303);
    expect(signIn.headers['cache-control']).toBe('no-store');
    for (const url of ['/', '/account', '/backups', '/account/devices', '/no/such/page']) {
      const page = await client.get(url);
      expect([url, page.headers['cache-control']]).toEqual([url, 'no-store']);
    }
    const css = await subject.app.inject({ url: '/static/app.css' });
    expect(css.statusCode).toBe(200);
    expect(css.headers['cache-control']).not.toContain('no-store');
  });

  it('answers an unknown address with an HTML 404 page', async () => {
    const res = await subject.app.inject({ url: '/no/such/page?x=1' });
    expect(res.statusCode).toBe(404);
    expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(res.body).toContain('<h1>Page not found</h1>');
    expect(res.body).toContain('There is no page at this address.');
  });

  it('shows a 500 page that reveals nothing of the fault, but logs it with the same reference', async () => {
    const res = await subject.app.inject({ url: '/test/explode' });
    expect(res.statusCode).toBe(500);
    expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(res.body).toContain('Something went wrong on our side.');
    for (const leak of ['10.0.0.7', 'password authentication', 'archway"', 'Error:', '.ts:']) expect(res.body).not.toContain(leak);
    expect(res.body).not.toMatch(/\n\s+at /); // no stack frame
    const reference = /reference <code>([0-9a-f-]{36})<\/code>/.exec(res.body)?.[1];
    expect(reference).toBeDefined();
    expect(subject.logText()).toContain(reference);
    expect(subject.logText()).toContain('password authentication failed');
  });

  it('escapes what it renders, so markup in an address cannot inject HTML', async () => {
    const res = await subject.app.inject({ url: '/%3Cscript%3Ealert(1)%3C/script%3E' });
    expect(res.statusCode).toBe(404);
    expect(res.body).not.toContain('<script>');
  });

  it('refuses a form body over 64 KiB with a plain 413 page', async () => {
    const res = await subject.app.inject({
      method: 'POST',
      url: '/',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: `a=${'x'.repeat(70 * 1024)}`,
    });
    expect(res.statusCode).toBe(413);
    expect(res.body).toContain('What you sent is too large.');
  });

  it('answers a URL it cannot parse with the HTML error page, not a framework message', async () => {
    const res = await subject.app.inject({ url: '/%' });
    expect(res.statusCode).toBe(400);
    expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(res.body).toContain('The request could not be understood.');
    expect(res.body).not.toContain('FST_');
  });

  it('keeps error codes in the log so an operator can tell refusals apart', async () => {
    await subject.app.inject({
      method: 'POST',
      url: '/',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: `a=${'x'.repeat(70 * 1024)}`,
    });
    expect(subject.logText()).toContain('"code":"FST_ERR_CTP_BODY_TOO_LARGE"');
  });

  it('refuses a forwarded client address that is not an IP address, from a trusted proxy too', async () => {
    const ownHandle = await connectDatabase({ databaseUrl: subject.database.url, dataDir: '/nonexistent' });
    const behindProxy = await buildTestApp(ownHandle, subject.database.url, { ARCHWAY_TRUST_PROXY: '127.0.0.1' });
    try {
      for (const forged of ['not-an-ip', '300.1.1.1', "1.2.3.4'--"]) {
        const res = await behindProxy.app.inject({ url: '/sign-in', headers: { 'x-forwarded-for': forged } });
        expect(res.statusCode).toBe(400);
        expect(res.body).toContain('The request could not be understood.');
      }
      const res = await behindProxy.app.inject({ url: '/', headers: { 'x-forwarded-for': '203.0.113.9' } });
      expect(res.statusCode).toBe(200);
    } finally {
      await behindProxy.app.close();
    }
  });

  it('never writes a planted secret from a cookie, header, query or form into the log', async () => {
    const planted = 'PLANTED-SECRET-7f3a9c';
    await subject.app.inject({
      method: 'POST',
      url: `/no/such/form?token=${planted}&t=${planted}&page=2`,
      headers: {
        cookie: `__Host-session=${planted}`,
        authorization: `Bearer ${planted}`,
        'content-type': 'application/x-www-form-urlencoded',
      },
      payload: `password=${planted}&token=${planted}`,
    });
    await subject.app.inject({ url: `/download/abc?token=${planted}` });
    const log = subject.logText();
    expect(log).toContain('/no/such/form?token=[redacted]&t=[redacted]&page=2');
    expect(log).toContain('/download/abc?token=[redacted]');
    expect(log).not.toContain(planted);
  });
});

describe('the public files', () => {
  it('serves the stylesheet and the countdown script with their types, and nothing outside public/', async () => {
    const css = await subject.app.inject({ url: '/static/app.css' });
    expect(css.statusCode).toBe(200);
    expect(css.headers['content-type']).toMatch(/^text\/css/);
    expect(css.body).toContain('{');
    const js = await subject.app.inject({ url: '/static/download-countdown.js' });
    expect(js.statusCode).toBe(200);
    expect(js.headers['content-type']).toMatch(/^(text|application)\/javascript/);
    for (const url of ['/static/../package.json', '/static/%2e%2e/package.json', '/static/missing.css']) {
      const res = await subject.app.inject({ url });
      expect(res.statusCode, url).toBe(404);
      expect(res.body, url).not.toContain('"dependencies"');
    }
    // The folder itself is not listed.
    const folder = await subject.app.inject({ url: '/static/' });
    expect(folder.statusCode).toBe(403);
    expect(folder.body).not.toContain('download-countdown.js');
  });
});

describe('stopping', () => {
  it('finishes a request already in flight and turns new connections away', async () => {
    const db = await createTestDatabase();
    const { app } = await buildTestApp(db.handle, db.url);
    let requestArrived!: () => void;
    const arrived = new Promise<void>((resolve) => (requestArrived = resolve));
    app.get('/test/slow', async () => {
      requestArrived();
      await new Promise((r) => setTimeout(r, 300));
      return { finished: true };
    });
    const address = await app.listen({ host: '127.0.0.1', port: 0 });
    try {
      expect((await fetch(`${address}/readyz`)).status).toBe(200);
      const slow = fetch(`${address}/test/slow`).then(async (r) => ({ status: r.status, body: await r.json() }));
      await arrived;
      const closing = app.close();
      expect(await slow).toEqual({ status: 200, body: { finished: true } });
      await closing;
      await expect(fetch(`${address}/healthz`)).rejects.toThrow();
      // onClose closed the pool too: the database handle no longer answers.
      expect(await db.handle.isReachable(500)).toBe(false);
    } finally {
      await db.drop();
    }
  });
});

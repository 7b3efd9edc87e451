import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeUserAgent } from '../../src/devices/user-agent.js';
import { WebClient } from '../harness/web-client.js';
import { startWorld } from '../accounts/fixtures.js';
import type { PortalWorld } from '../harness/world.js';
import { createUser, PASSWORD } from '../harness/users.js';

let world: PortalWorld;
beforeAll(async () => {
  world = await startWorld();
});
afterAll(async () => world.close());

const COOKIE = 'archway-remember';
const db = () => world.app.ctx.database.db;
const FIREFOX = 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0';
const SAFARI =
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1';

async function browser(email: string, remoteAddress: string, userAgent: string, remember = false): Promise<WebClient> {
  const client = new WebClient(world.app, { remoteAddress, headers: { 'user-agent': userAgent } });
  await client.get('/sign-in');
  const answer = await client.post('/sign-in', { email, password: PASSWORD, ...(remember ? { remember: 'on' } : {}) });
  expect(answer.status).toBe(303);
  return client;
}

function refsOn(html: string): string[] {
  return [...html.matchAll(/name="device" value="([^"]+)"/g)].map((m) => m[1]!);
}

describe('the devices page', () => {
  it('lists every signed-in browser with when, where and which browser, marking this one', async () => {
    const user = await createUser(world.app);
    const laptop = await browser(user.email, '198.51.100.41', FIREFOX);
    await browser(user.email, '198.51.100.42', SAFARI);
    const page = await laptop.get('/account/devices');
    expect(page.status).toBe(200);
    expect(page.headers['cache-control']).toBe('no-store');
    expect(page.body).toContain('Firefox on Linux <strong>(this browser)</strong>');
    expect(page.body).toContain('Safari on iOS');
    expect(page.body).toContain('<td>198.51.100.41</td>');
    expect(page.body).toContain('<td>198.51.100.42</td>');
    expect(page.body).toMatch(/<td>\d{4}-\d\d-\d\d \d\d:\d\d UTC<\/td>/);
    // Only the other browser has a sign-out button; this one signs out with the usual button.
    expect(refsOn(page.body)).toHaveLength(1);
  });

  it('ends another browser: its session cookie is useless from its very next request', async () => {
    const user = await createUser(world.app);
    const mine = await browser(user.email, '198.51.100.43', FIREFOX);
    const lost = await browser(user.email, '198.51.100.44', SAFARI);
    expect((await lost.get('/account')).status).toBe(200);

    const page = await mine.get('/account/devices');
    const [ref] = refsOn(page.body);
    const answer = await mine.post('/account/devices/end', { device: ref! });
    expect(answer.status).toBe(303);
    expect(answer.location).toBe('/account/devices?ended');
    expect((await mine.get('/account/devices?ended')).body).toContain('That browser was signed out.');

    const after = await lost.get('/account');
    expect(after.status).toBe(303);
    expect(after.location).toBe('/sign-in?next=%2Faccount');
    expect((await mine.get('/account')).status).toBe(200);
    expect(await db().selectFrom('sessions').select('id').where('user_id', '=', user.id).execute()).toHaveLength(1);
  });

  it('ends a remembered browser together with its remember-me cookie', async () => {
    const user = await createUser(world.app);
    const mine = await browser(user.email, '198.51.100.45', FIREFOX);
    const remembered = new WebClient(world.app, { remoteAddress: '198.51.100.46', headers: { 'user-agent': SAFARI } });
    const { createRememberLogin } = await import('../../src/auth/remember-me.service.js');
    const issued = await createRememberLogin(db(), {
      userId: user.id,
      now: world.clock.now(),
      sessionId: null,
      ip: '198.51.100.46',
      userAgent: SAFARI,
    });
    remembered.cookies.set(COOKIE, issued.value);
    expect((await remembered.get('/account')).status).toBe(200);

    const page = await mine.get('/account/devices');
    expect(page.body).toMatch(/Safari on iOS<\/td>[\s\S]*?<td>\d{4}-\d\d-\d\d \d\d:\d\d UTC<\/td>\s*<td><form/);
    const [ref] = refsOn(page.body);
    await mine.post('/account/devices/end', { device: ref! });
    // Neither the session cookie nor the remember-me cookie signs it in any more.
    expect((await remembered.get('/account')).status).toBe(303);
    remembered.cookies.delete('archway-session');
    expect((await remembered.get('/account')).status).toBe(303);
    expect(
      await db().selectFrom('remember_logins').select('id').where('user_id', '=', user.id).where('replaced_at', 'is', null).execute(),
    ).toEqual([]);
  });

  it("cannot end another account's browser, whatever is posted", async () => {
    const user = await createUser(world.app);
    const other = await createUser(world.app);
    const victim = await browser(other.email, '198.51.100.47', FIREFOX);
    const attacker = await browser(user.email, '198.51.100.48', FIREFOX);
    const [victimSession] = await db().selectFrom('sessions').select('id').where('user_id', '=', other.id).execute();
    for (const device of [`s:${victimSession!.id}`, 'r:1', 's:zz', '', 'r:99999999999999999999']) {
      await attacker.get('/account/devices');
      const answer = await attacker.post('/account/devices/end', { device });
      expect(answer.location).toBe('/account/devices?gone');
    }
    expect((await victim.get('/account')).status).toBe(200);
  });

  it('signs out every other browser, or every browser including this one', async () => {
    const user = await createUser(world.app);
    const a = await browser(user.email, '198.51.100.49', FIREFOX);
    const b = await browser(user.email, '198.51.100.50', SAFARI);
    const c = await browser(user.email, '198.51.100.51', SAFARI);
    await a.get('/account/devices');
    expect((await a.post('/account/devices/end-others', {})).location).toBe('/account/devices?others-ended');
    expect((await a.get('/account')).status).toBe(200);
    expect((await b.get('/account')).status).toBe(303);
    expect((await c.get('/account')).status).toBe(303);

    await a.get('/account/devices');
    const everywhere = await a.post('/account/devices/sign-out-everywhere', {});
    expect(everywhere.location).toBe('/sign-in?signed-out');
    expect((await a.get('/account')).status).toBe(303);
    expect(await db().selectFrom('sessions').select('id').where('user_id', '=', user.id).execute()).toEqual([]);
    expect(await db().selectFrom('remember_logins').select('id').where('user_id', '=', user.id).execute()).toEqual([]);
  });
});

describe('browser names', () => {
  it('says which browser on which system, and admits when it cannot tell', () => {
    expect(describeUserAgent(FIREFOX)).toBe('Firefox on Linux');
    expect(describeUserAgent(SAFARI)).toBe('Safari on iOS');
    expect(
      describeUserAgent(
        'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0',
      ),
    ).toBe('Edge on Windows');
    expect(
      describeUserAgent(
        'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36',
      ),
    ).toBe('Chrome on macOS');
    expect(describeUserAgent(null)).toBe('Unknown browser');
    expect(describeUserAgent('<script>')).toBe('Unknown browser');
  });
});

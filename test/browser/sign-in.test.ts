import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SIGN_IN_FAILED_MESSAGE } from '../../src/auth/sign-in.service.js';
import type { TestBrowser } from '../harness/browser.js';
import { startPortalWorld, type PortalWorld } from '../harness/world.js';
import { createUser, PASSWORD } from '../harness/users.js';

let subject: PortalWorld;
let browser: TestBrowser;
let origin: string;

beforeAll(async () => {
  subject = await startPortalWorld({ browser: true });
  ({ browser, origin } = subject);
});
afterAll(async () => subject?.close());

describe('signing in and out in a browser with JavaScript off', () => {
  it('signs in through the real form, reaches the account page, and signs out with the button', async () => {
    const customer = await createUser(subject.app);
    const context = await browser.newContext();
    const page = await context.newPage();
    try {
      // A protected page sends the visitor to sign in, and back afterwards.
      await page.goto(`${origin}/account`);
      expect(new URL(page.url()).pathname).toBe('/sign-in');
      expect(await page.locator('h1').textContent()).toBe('Sign in');

      // A wrong password first: the same form comes back with the message and the address kept.
      await page.getByLabel('Email address').fill(customer.email);
      await page.getByLabel('Password').fill('Not-The-Password-1');
      await page.getByRole('button', { name: 'Sign in' }).click();
      expect(await page.locator('#sign-in-error').textContent()).toBe(SIGN_IN_FAILED_MESSAGE);
      expect(await page.getByLabel('Email address').inputValue()).toBe(customer.email);
      expect(await page.getByLabel('Password').inputValue()).toBe('');

      await page.getByLabel('Password').fill(PASSWORD);
      await page.getByRole('button', { name: 'Sign in' }).click();
      expect(new URL(page.url()).pathname).toBe('/account');
      expect(await page.locator('main').textContent()).toContain(customer.email);
      expect(await page.locator('nav.session').textContent()).toContain(customer.email);
      const cookies = await context.cookies();
      const session = cookies.find((c) => c.name === 'archway-session');
      expect(session).toMatchObject({ httpOnly: true, sameSite: 'Lax', path: '/', expires: -1 });

      await page.getByRole('button', { name: 'Sign out' }).click();
      expect(page.url()).toBe(`${origin}/sign-in?signed-out`);
      expect(await page.locator('p.flash').textContent()).toBe('You have signed out.');

      // The back button (the next person at a shared computer) must not bring the account page back from a cache.
      await page.goBack();
      expect(await page.locator('body').textContent()).not.toContain(customer.email);
      expect(new URL(page.url()).pathname).toBe('/sign-in');
      await page.goto(`${origin}/sign-in?signed-out`);
      expect((await context.cookies()).find((c) => c.name === 'archway-session')).toBeUndefined();
      expect(await subject.app.ctx.database.db.selectFrom('sessions').select('id').where('user_id', '=', customer.id).execute()).toEqual(
        [],
      );

      // The account page is closed again.
      await page.goto(`${origin}/account`);
      expect(new URL(page.url()).pathname).toBe('/sign-in');
    } finally {
      await context.close();
    }
  });
});

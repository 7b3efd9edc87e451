import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { base32Decode, codeAt } from '../../src/two-factor/totp.js';
import type { TestBrowser } from '../harness/browser.js';
import { startPortalWorld, type PortalWorld } from '../harness/world.js';
import { alignToMidStep } from '../two-factor/fixtures.js';
import { createUser, PASSWORD } from '../harness/users.js';

let subject: PortalWorld;
let browser: TestBrowser;
let origin: string;

beforeAll(async () => {
  subject = await startPortalWorld({ browser: true });
  ({ browser, origin } = subject);
});
afterAll(async () => subject?.close());

/** The phone: the code for the app's now, after moving to a fresh 30-second step so no code is reused. */
function nextCode(secret: Buffer): string {
  subject.clock.advance(30_000);
  alignToMidStep(subject.clock);
  return codeAt(secret, subject.clock.now());
}

describe('two-factor sign-in and remember-me in a browser with JavaScript off', () => {
  it('enrols, signs in with a code and with a recovery code, and comes back signed in with remember-me', async () => {
    const user = await createUser(subject.app);
    const context = await browser.newContext();
    const page = await context.newPage();
    try {
      await page.goto(`${origin}/sign-in`);
      await page.getByLabel('Email address').fill(user.email);
      await page.getByLabel('Password').fill(PASSWORD);
      await page.getByRole('button', { name: 'Sign in' }).click();
      expect(new URL(page.url()).pathname).toBe('/account');

      // Enrolment: the QR code is a picture in the page; the key is there as text too.
      expect(await page.locator('#two-factor-summary').textContent()).toContain('Off.');
      await page.locator('#two-factor-summary').getByRole('link', { name: 'Set up two-factor sign-in' }).click();
      expect(new URL(page.url()).pathname).toBe('/account/two-factor');
      await page.getByRole('link', { name: 'Set up two-factor sign-in' }).click();
      expect(new URL(page.url()).pathname).toBe('/account/two-factor/enrol');
      expect(await page.locator('figure.qr svg').isVisible()).toBe(true);
      const secret = base32Decode((await page.locator('#totp-secret').textContent()) ?? '');
      expect(secret.length).toBe(20);
      await page.getByLabel('Code from the app').fill(nextCode(secret));
      await page.getByLabel('Your password').fill(PASSWORD);
      await page.getByRole('button', { name: 'Turn on two-factor sign-in' }).click();
      expect(await page.locator('h1').textContent()).toBe('Two-factor sign-in is on');
      const recoveryCodes = await page.locator('#recovery-codes code').allTextContents();
      expect(recoveryCodes).toHaveLength(10);
      await page.getByRole('link', { name: 'I have saved them' }).click();
      expect(await page.locator('#recovery-codes-left').textContent()).toBe('You have 10 unused recovery codes of 10.');

      const signOut = async () => {
        await page.locator('nav.session').getByRole('button', { name: 'Sign out' }).click();
        expect(page.url()).toBe(`${origin}/sign-in?signed-out`);
      };
      const passwordStep = async (remember = false) => {
        await page.getByLabel('Email address').fill(user.email);
        await page.getByLabel('Password').fill(PASSWORD);
        if (remember) await page.getByLabel('Keep me signed in on this computer for 5 days').check();
        await page.getByRole('button', { name: 'Sign in' }).click();
        expect(new URL(page.url()).pathname).toBe('/sign-in/two-factor');
        expect(await page.locator('h1').textContent()).toBe('Two-factor sign-in');
      };

      // Signing in with a code from the app.
      await signOut();
      await passwordStep();
      await page.getByLabel('Code').fill(nextCode(secret));
      await page.getByRole('button', { name: 'Continue' }).click();
      expect(new URL(page.url()).pathname).toBe('/account');
      expect(await page.locator('nav.session').textContent()).toContain(user.email);

      // Signing in with a recovery code instead.
      await signOut();
      await passwordStep();
      await page.getByLabel('Code').fill(recoveryCodes[0]!);
      await page.getByRole('button', { name: 'Continue' }).click();
      expect(new URL(page.url()).pathname).toBe('/account');
      await page.goto(`${origin}/account/two-factor`);
      expect(await page.locator('#recovery-codes-left').textContent()).toBe('You have 9 unused recovery codes of 10.');

      // Remember me: the cookie comes only after the second step.
      await signOut();
      await passwordStep(true);
      expect((await context.cookies()).find((c) => c.name === 'archway-remember')).toBeUndefined();
      await page.getByLabel('Code').fill(nextCode(secret));
      await page.getByRole('button', { name: 'Continue' }).click();
      expect(new URL(page.url()).pathname).toBe('/account');
      const remember = (await context.cookies()).find((c) => c.name === 'archway-remember');
      expect(remember).toMatchObject({ httpOnly: true, sameSite: 'Lax', path: '/' });
      const days = (remember!.expires * 1000 - subject.clock.now().getTime()) / 86_400_000;
      expect(days).toBeGreaterThan(4.99);
      expect(days).toBeLessThan(5.001);

      // The browser is closed and opened again: only the remember-me cookie (it has an expiry) survives.
      // A fresh context, not clearCookies: a late response of the old one (the favicon) could bring the session back.
      const reopened = await browser.newContext();
      await reopened.addCookies([remember!]);
      const later = await reopened.newPage();
      await later.goto(`${origin}/account`);
      expect(new URL(later.url()).pathname).toBe('/account');
      expect(await later.locator('h1').textContent()).toBe('Your account');
      expect(await later.locator('nav.session').textContent()).toContain(user.email);
      const renewed = (await reopened.cookies()).find((c) => c.name === 'archway-remember');
      expect(renewed?.value).not.toBe(remember!.value);
      expect((await reopened.cookies()).find((c) => c.name === 'archway-session')).toBeDefined();

      // Signing out ends this browser's remember-me login too: the cookie goes, and a copy of it signs no one in.
      await later.locator('nav.session').getByRole('button', { name: 'Sign out' }).click();
      expect(later.url()).toBe(`${origin}/sign-in?signed-out`);
      expect((await reopened.cookies()).find((c) => c.name === 'archway-remember')).toBeUndefined();
      await later.goto(`${origin}/account`);
      expect(new URL(later.url()).pathname).toBe('/sign-in');
      await reopened.close();
      const copied = await browser.newContext();
      await copied.addCookies([renewed!]);
      const copy = await copied.newPage();
      await copy.goto(`${origin}/account`);
      expect(new URL(copy.url()).pathname).toBe('/sign-in');
      await copied.close();
    } finally {
      await context.close();
    }
  });
});

// The operator's area in a browser with JavaScript off: sign in with two-factor, read and filter the log, export it.
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { codeAt } from '../../src/two-factor/totp.js';
import { startPortalWorld, type PortalWorld } from '../harness/world.js';
import { alignToMidStep } from '../two-factor/fixtures.js';
import { createOperator, createUser, PASSWORD } from '../harness/users.js';
import { WebClient } from '../harness/web-client.js';

let subject: PortalWorld;

beforeAll(async () => {
  subject = await startPortalWorld({ browser: true, env: { ARCHWAY_SIGNIN_IP_MAX_FAILURES: '3' } });
});
afterAll(async () => subject?.close());

describe('the operator in a browser with JavaScript off', () => {
  it('signs in with two-factor, filters the request log by customer and by IP, exports it, and lifts a block', async () => {
    const { operator, secret } = await createOperator(subject.app);
    const customer = await createUser(subject.app);
    // What the operator will look for: a customer's sign-ins, and an address that guessed until blocked.
    const guesser = new WebClient(subject.app, { remoteAddress: '203.0.113.77' });
    for (let i = 0; i < 3; i++) await guesser.signIn(customer.email, 'wrong-password');
    await new WebClient(subject.app, { remoteAddress: '198.51.100.5' }).signIn(customer.email, PASSWORD);

    const context = await subject.browser.newContext();
    const page = await context.newPage();
    try {
      await page.goto(`${subject.origin}/sign-in`);
      await page.getByLabel('Email address').fill(operator.email);
      await page.getByLabel('Password').fill(PASSWORD);
      await page.getByRole('button', { name: 'Sign in' }).click();
      alignToMidStep(subject.clock);
      await page.getByLabel('Code').fill(codeAt(secret, subject.clock.now()));
      await page.getByRole('button', { name: 'Continue' }).click();
      expect(new URL(page.url()).pathname).toBe('/operator');

      await page.getByRole('link', { name: 'Request log' }).click();
      await page.getByLabel('Customer').fill(customer.email);
      await page.getByRole('button', { name: 'Show' }).click();
      expect(new URL(page.url()).searchParams.get('customer')).toBe(customer.email);
      const rows = page.locator('table.log tbody tr');
      expect(await rows.count()).toBe(4); // three wrong passwords and the account's success, nothing of others
      expect(await rows.first().textContent()).toContain('198.51.100.5');

      await page.getByRole('link', { name: 'Show everything, newest first' }).click();
      await page.getByLabel('IP address or range').fill('203.0.113.0/24');
      await page.getByRole('button', { name: 'Show' }).click();
      const cells = await page.locator('table.log tbody tr td:nth-child(5)').allTextContents();
      expect(cells).toEqual(['Block started', 'Password', 'Password', 'Password']);

      const download = page.waitForEvent('download');
      await page.getByRole('link', { name: 'Download this view as CSV' }).click();
      const csv = await readFile((await (await download).path())!, 'utf8');
      expect(csv.split('\r\n').filter((l) => l !== '')).toHaveLength(5);
      expect(csv).toContain('"203.0.113.77","block","started","blocked"');

      await page.goto(`${subject.origin}/operator`);
      await page.getByRole('button', { name: 'Unblock' }).click();
      expect(await page.locator('p.flash').textContent()).toBe('The block was lifted.');
      expect((await new WebClient(subject.app, { remoteAddress: '203.0.113.77' }).signIn(customer.email, PASSWORD)).location).toBe(
        '/account',
      );

      await page.goto(`${subject.origin}/operator/activity`);
      expect(await page.locator('svg.chart').count()).toBe(5);
    } finally {
      await context.close();
    }
  });
});

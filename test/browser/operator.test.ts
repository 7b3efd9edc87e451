// The operator's area in a browser with JavaScript off: sign in with two-factor, filter and export the log, lift a block, suspend and resume.
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
  it('signs in with two-factor, filters the request log by customer and by IP, exports it, lifts a block, suspends and resumes', async () => {
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

      // Suspend the customer from their page, with a reason; they can no longer sign in. Then resume.
      await page.goto(`${subject.origin}/operator`);
      await page.getByRole('link', { name: 'Customers' }).click();
      await page.getByLabel('Email, domain or PayPal subscription id').fill(customer.email);
      await page.getByRole('button', { name: 'Search' }).click();
      await page.getByRole('link', { name: customer.email }).click();
      const customerPage = page.url();
      await page.getByRole('link', { name: 'Suspend the account' }).click();
      await page.getByLabel('Reason (kept in the audit log)').fill('Chargeback on the last payment');
      await page.getByRole('button', { name: 'Suspend the account' }).click();
      expect(page.url()).toContain(customerPage);
      expect(await page.locator('p.flash').textContent()).toBe('The account was suspended; the customer was emailed.');
      expect((await new WebClient(subject.app).signIn(customer.email, PASSWORD)).status).toBe(401);
      await page.getByRole('link', { name: 'Resume the account' }).click();
      await page.getByLabel('Reason (kept in the audit log)').fill('Payment cleared');
      await page.getByRole('button', { name: 'Resume the account' }).click();
      expect(await page.locator('p.flash').textContent()).toBe('The account was resumed; the customer was emailed.');
      expect((await new WebClient(subject.app).signIn(customer.email, PASSWORD)).location).toBe('/account');
      // Both actions are in the customer's request log, with the operator and the reason.
      await page.getByRole('link', { name: "This customer's request log" }).click();
      const actions = await page.locator('table.log tbody tr td:nth-child(5)').allTextContents();
      expect(actions.filter((a) => a.startsWith('user.'))).toEqual(['user.resumed', 'user.suspended']);
      expect(await page.locator('table.log tbody tr', { hasText: 'user.resumed' }).textContent()).toContain('Payment cleared');
      expect(await page.locator('table.log tbody tr', { hasText: 'user.suspended' }).textContent()).toContain(operator.id);

      await page.goto(`${subject.origin}/operator/activity`);
      expect(await page.locator('svg.chart').count()).toBe(5);
    } finally {
      await context.close();
    }
  });
});

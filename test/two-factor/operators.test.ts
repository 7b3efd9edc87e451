import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectDatabase } from '../../src/db/connect.js';
import { buildTestApp } from '../harness/app.js';
import { WebClient } from '../harness/web-client.js';
import { deliverMail, enrolThroughPages, passwordStep, recipients, signedInClient, startWorld } from './fixtures.js';
import type { PortalWorld } from '../harness/world.js';
import { createUser, PASSWORD } from '../harness/users.js';

let world: PortalWorld;
beforeAll(async () => {
  world = await startWorld();
});
afterAll(async () => world.close());

const db = () => world.app.ctx.database.db;
const clock = () => world.clock;
const operatorFields = { role: 'operator' as const };

describe('operators and two-factor sign-in', () => {
  it('sends an operator without two-factor to enrolment, and lets them reach nothing else until it is done', async () => {
    const operator = await createUser(world.app, operatorFields);
    const client = new WebClient(world.app);
    const signIn = await passwordStep(client, operator.email, PASSWORD);
    expect(signIn.status).toBe(303);
    for (const path of ['/operator', '/account', '/account/devices', '/account/two-factor', '/operator/two-factor', '/']) {
      const answer = await client.get(path);
      expect(answer.status).toBe(303);
      expect(answer.location).toBe('/account/two-factor/enrol');
    }
    const enrol = await client.get('/account/two-factor/enrol');
    expect(enrol.status).toBe(200);
    expect(enrol.body).toContain('Your account must use two-factor sign-in. Set it up to continue.');
    const refused = await client.post('/account/devices/end-others', {});
    expect(refused.status).toBe(403);
    expect(refused.body).toContain('Your account must use two-factor sign-in. Set it up first, then try again.');
    expect((await client.get('/terms')).status).toBe(200);

    await enrolThroughPages(client, clock(), PASSWORD);
    const area = await client.get('/operator');
    expect(area.status).toBe(200);
    expect(area.body).toContain('<h1>Operator</h1>');
    await deliverMail(world);
  });

  it('does not force customers unless ARCHWAY_TWO_FACTOR_FOR_CUSTOMERS is on', async () => {
    const customer = await createUser(world.app);
    const client = await signedInClient(world.app, customer.email, PASSWORD);
    expect((await client.get('/account')).status).toBe(200);

    // Its own connection to the same database: closing an app closes its handle.
    const handle = await connectDatabase({ databaseUrl: world.database.url, dataDir: '/nonexistent' });
    const strict = await buildTestApp(handle, world.database.url, {
      ARCHWAY_SMTP_URL: world.sink.url,
      ARCHWAY_PUBLIC_URL: 'https://portal.example.net',
      ARCHWAY_TWO_FACTOR_FOR_CUSTOMERS: 'true',
    });
    try {
      await strict.app.ready();
      const forced = new WebClient(strict.app);
      await passwordStep(forced, customer.email, PASSWORD);
      const answer = await forced.get('/account');
      expect(answer.status).toBe(303);
      expect(answer.location).toBe('/account/two-factor/enrol');
    } finally {
      await strict.app.close();
    }
  });
});

describe("the operator's two-factor reset", () => {
  it("turns a customer's two-factor off, signs them out everywhere, records who did it, and emails them", async () => {
    const customer = await createUser(world.app);
    const customerBrowser = await signedInClient(world.app, customer.email, PASSWORD);
    await enrolThroughPages(customerBrowser, clock(), PASSWORD);
    const operator = await createUser(world.app, operatorFields);
    const desk = await signedInClient(world.app, operator.email, PASSWORD, { remoteAddress: '198.51.100.90' });
    await enrolThroughPages(desk, clock(), PASSWORD);
    await deliverMail(world);

    const form = await desk.get('/operator/two-factor');
    expect(form.status).toBe(200);
    expect(form.body).toContain('<label for="email">Email address of the account</label>');
    const unconfirmed = await desk.post('/operator/two-factor', { email: customer.email });
    expect(unconfirmed.status).toBe(400);
    expect(unconfirmed.body).toContain('Tick the box to confirm you checked who is asking.');
    expect(unconfirmed.body).toContain(`value="${customer.email}"`);
    const unknown = await desk.post('/operator/two-factor', { email: 'nobody@example.net', confirm: 'yes' });
    expect(unknown.status).toBe(404);
    const self = await desk.post('/operator/two-factor', { email: operator.email, confirm: 'yes' });
    expect(self.status).toBe(400);
    expect(await db().selectFrom('audit_log').select('id').where('action', '=', 'two-factor.reset').execute()).toEqual([]);

    const done = await desk.post('/operator/two-factor', { email: customer.email, confirm: 'yes' });
    expect(done.status).toBe(303);
    expect(done.location).toBe('/operator/two-factor?done');
    expect(await db().selectFrom('two_factor').select('user_id').where('user_id', '=', customer.id).execute()).toEqual([]);
    expect(await db().selectFrom('two_factor_recovery_codes').select('id').where('user_id', '=', customer.id).execute()).toEqual([]);
    expect((await customerBrowser.get('/account')).status).toBe(303);
    const audit = await db()
      .selectFrom('audit_log')
      .select(['actor', 'action', 'subject', 'ip'])
      .where('action', '=', 'two-factor.reset')
      .execute();
    expect(audit).toEqual([{ actor: operator.id, action: 'two-factor.reset', subject: customer.id, ip: '198.51.100.90' }]);
    const mail = await deliverMail(world);
    expect(mail.map((m) => [recipients(m), m.subject])).toEqual([
      [[customer.email], 'Your provider reset two-factor sign-in on your Archway account'],
    ]);

    // The customer signs in with the password alone now.
    const back = new WebClient(world.app);
    expect((await passwordStep(back, customer.email, PASSWORD)).location).toBe('/account');
    // And a customer cannot reach the reset page.
    const page = await back.get('/operator/two-factor');
    expect(page.status).toBe(403);
  });
});

// Suspending from the customer page stops archives too: no new request, no emailed link works, no new link is sent.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PASSWORD, createOperator, signInOperator } from '../harness/users.js';
import { WebClient } from '../harness/web-client.js';
import { askForArchive, makeSnapshot, readyArchive, sendLinks, startArchiveWorld, type ArchiveWorld } from '../archives/archive-world.js';

let world: ArchiveWorld;
let desk: WebClient;

beforeAll(async () => {
  world = await startArchiveWorld();
  const { operator, secret } = await createOperator(world.app);
  desk = new WebClient(world.app, { remoteAddress: '203.0.113.10' });
  expect((await signInOperator(world.app, desk, operator.email, secret)).status).toBe(303);
});
afterAll(async () => world.close());

async function act(userId: string, action: 'suspend' | 'resume', reason: string) {
  await desk.get(`/operator/customers/${userId}/${action}`);
  const done = await desk.post(`/operator/customers/${userId}/${action}`, { reason });
  expect(done.location).toBe(`/operator/customers/${userId}?done=${action}`);
}

describe('a customer suspended from the operator page', () => {
  it('cannot ask for an archive, use an emailed link or get a new one; after resume the customer signs in and asks again', async () => {
    const { user, client, id, link } = await readyArchive(world);
    makeSnapshot(world, user.domain!, 'daily.1', 2);
    await act(user.id, 'suspend', 'Chargeback');

    // The open browser: the archive form and the emailed link lead to the sign-in page only.
    const asked = await client.post('/archives', { snapshot: 'daily.1' });
    // The form's token belonged to the session that ended: refused before anything is asked of the backup host.
    expect(asked.status).toBe(403);
    // Opening the emailed link at most moves its token into a cookie; the page behind it wants a sign-in.
    const opened = await client.get(link.path);
    const page = opened.location === `/downloads/${id}` ? await client.get(opened.location) : opened;
    expect(page.location).toMatch(/^\/sign-in/);
    const fresh = new WebClient(world.app, { remoteAddress: '198.51.100.7' });
    expect((await fresh.signIn(user.email, PASSWORD)).status).toBe(401);
    const elsewhere = await fresh.get(link.path);
    expect((elsewhere.location === `/downloads/${id}` ? await fresh.get(elsewhere.location) : elsewhere).location).toMatch(/^\/sign-in/);
    const requests = await world.app.ctx.database.db.selectFrom('archive_requests').select('id').where('user_id', '=', user.id).execute();
    expect(requests.map((r) => r.id)).toEqual([id]);

    // A link email falling due now is not sent to a suspended account.
    await world.app.ctx.database.db
      .updateTable('archive_requests')
      .set({ notify_due_at: world.clock.now(), notify_attempts: 0 })
      .where('id', '=', id)
      .execute();
    expect(await sendLinks(world)).toEqual([]);

    await act(user.id, 'resume', 'Settled');
    const back = new WebClient(world.app, { remoteAddress: '198.51.100.7' });
    expect((await back.signIn(user.email, PASSWORD)).status).toBe(303);
    expect(await askForArchive(back, 'daily.1')).toMatch(/^[0-9a-f-]{36}$/);
  });
});

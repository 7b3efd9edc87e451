// "Forgot password" under parallel requests: the per-account limit holds, and one client address cannot mail everyone.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_RESETS_PER_HOUR } from '../../src/accounts/account.service.js';
import { WebClient } from '../harness/web-client.js';
import { startWorld } from './fixtures.js';
import type { PortalWorld } from '../harness/world.js';
import { createUser } from '../harness/users.js';

const PER_IP = 4;
let world: PortalWorld;
beforeAll(async () => {
  world = await startWorld({ ARCHWAY_RESET_REQUESTS_PER_IP_PER_HOUR: String(PER_IP) });
});
afterAll(async () => world.close());

const db = () => world.app.ctx.database.db;
let ipCounter = 0;
const freshIp = () => `192.0.2.${(ipCounter += 1)}`;

async function resetMailTo(address: string) {
  return db().selectFrom('mail_queue').select('id').where('template', '=', 'password-reset').where('recipient', '=', address).execute();
}

/** Opens the form in each client first, then sends every request at once. */
async function askAtOnce(requests: Array<{ client: WebClient; email: string }>) {
  for (const { client } of requests) await client.get('/forgot-password');
  const answers = await Promise.all(requests.map(({ client, email }) => client.post('/forgot-password', { email })));
  await world.app.ctx.background.settle();
  return answers;
}

describe('forgot password under parallel requests', () => {
  it('sends at most 3 links an hour to an account when 10 requests arrive at once', async () => {
    const user = await createUser(world.app);
    const answers = await askAtOnce(
      Array.from({ length: 10 }, () => ({ client: new WebClient(world.app, { remoteAddress: freshIp() }), email: user.email })),
    );
    for (const answer of answers) expect(answer.location).toBe('/forgot-password/sent');
    expect(await resetMailTo(user.email)).toHaveLength(MAX_RESETS_PER_HOUR);
    const tokens = await db()
      .selectFrom('account_tokens')
      .select('id')
      .where('user_id', '=', user.id)
      .where('purpose', '=', 'password_reset')
      .execute();
    expect(tokens).toHaveLength(MAX_RESETS_PER_HOUR);
  });

  it('lets one client address ask only a few times an hour, whichever accounts it names, with the same answer', async () => {
    const users = [];
    for (let i = 0; i < PER_IP + 3; i += 1) users.push(await createUser(world.app));
    const ip = freshIp();
    const answers = await askAtOnce(users.map((u) => ({ client: new WebClient(world.app, { remoteAddress: ip }), email: u.email })));
    // The page cannot say "too many" without telling which requests did something: the same redirect for all.
    for (const answer of answers) expect(answer.location).toBe('/forgot-password/sent');
    let sent = 0;
    for (const u of users) sent += (await resetMailTo(u.email)).length;
    expect(sent).toBe(PER_IP);

    // Unknown addresses count too, and another address of the same IPv6 /64 is the same client.
    const v6 = '2001:db8:5:5';
    const first = await askAtOnce(
      Array.from({ length: PER_IP }, (_, i) => ({
        client: new WebClient(world.app, { remoteAddress: `${v6}::${i + 1}` }),
        email: `nobody${i}@example.net`,
      })),
    );
    expect(first.map((a) => a.location)).toEqual(Array(PER_IP).fill('/forgot-password/sent'));
    const known = await createUser(world.app);
    await askAtOnce([{ client: new WebClient(world.app, { remoteAddress: `${v6}::ffff` }), email: known.email }]);
    expect(await resetMailTo(known.email)).toEqual([]);
    // From elsewhere the same account still gets its link.
    await askAtOnce([{ client: new WebClient(world.app, { remoteAddress: freshIp() }), email: known.email }]);
    expect(await resetMailTo(known.email)).toHaveLength(1);
  });
});

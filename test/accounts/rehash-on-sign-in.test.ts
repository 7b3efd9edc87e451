import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findUserById } from '../../src/users/user.repository.js';
import { createPasswordHasher } from '../../src/users/password-hasher.js';
import { testConfig } from '../harness/app.js';
import { WebClient } from '../harness/web-client.js';
import { startWorld } from './fixtures.js';
import type { PortalWorld } from '../harness/world.js';
import { createUser, PASSWORD } from '../harness/users.js';

let world: PortalWorld;
beforeAll(async () => {
  // The portal now runs with a higher argon2 time cost than the one the stored hash was made with.
  world = await startWorld({ ARCHWAY_ARGON2_TIME_COST: '3' });
});
afterAll(async () => world.close());

describe('signing in after the argon2 parameters were raised', () => {
  it('re-hashes the password with the new parameters on the next successful sign-in through the form', async () => {
    const old = createPasswordHasher(testConfig(world.database.url));
    const user = await createUser(world.app, { password: null });
    const oldHash = await old.hash(PASSWORD);
    await world.app.ctx.database.db.updateTable('users').set({ password_hash: oldHash }).where('id', '=', user.id).execute();
    expect(oldHash).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);

    expect((await new WebClient(world.app).signIn(user.email, 'Wrong-Password-1')).status).toBe(401);
    expect((await findUserById(world.app.ctx.database.db, user.id))?.passwordHash).toBe(oldHash);

    expect((await new WebClient(world.app).signIn(user.email, PASSWORD)).status).toBe(303);
    const fresh = (await findUserById(world.app.ctx.database.db, user.id))?.passwordHash ?? '';
    expect(fresh).toMatch(/^\$argon2id\$v=19\$m=19456,t=3,p=1\$/);
    expect((await new WebClient(world.app).signIn(user.email, PASSWORD)).status).toBe(303);
    expect((await findUserById(world.app.ctx.database.db, user.id))?.passwordHash).toBe(fresh);
  });
});

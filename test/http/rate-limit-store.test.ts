// The rate-limit windows kept in PostgreSQL: counted by one upsert per hit, and purged once long over.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseRateLimitStore, deleteOldRateLimitWindows } from '../../src/http/rate-limit-store.js';
import { startPortalWorld, type PortalWorld } from '../harness/world.js';

let world: PortalWorld;
beforeAll(async () => {
  world = await startPortalWorld();
});
afterAll(async () => world.close());

const db = () => world.app.ctx.database.db;

describe('the database rate-limit store', () => {
  it('counts hits per route and key, starts a new window once the old one is over, and keeps routes apart', async () => {
    const Store = databaseRateLimitStore(db());
    const backups = new Store({} as never).child({ routeInfo: { method: 'GET', url: '/backups' } } as never);
    const archives = new Store({} as never).child({ routeInfo: { method: 'POST', url: '/archives' } } as never);
    const hit = (store: typeof backups, key: string) =>
      new Promise<{ current: number; ttl: number }>((resolve, reject) =>
        store.incr(key, (error, result) => (error ? reject(error) : resolve(result!)), 60_000, 10),
      );
    // Twenty hits at once from one user: each is counted, none lost to a race.
    const burst = await Promise.all(Array.from({ length: 20 }, () => hit(backups, 'user:a')));
    expect(burst.map((r) => r.current).sort((x, y) => x - y)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(burst.every((r) => r.ttl > 0 && r.ttl <= 60_000)).toBe(true);
    expect((await hit(archives, 'user:a')).current).toBe(1);
    expect((await hit(backups, 'user:b')).current).toBe(1);
    // The window started over a minute ago: the next hit starts a fresh one.
    await db()
      .updateTable('rate_limit_hits')
      .set({ window_started_at: new Date(Date.now() - 61_000) })
      .where('key', '=', 'GET /backups|user:a')
      .execute();
    expect((await hit(backups, 'user:a')).current).toBe(1);
  });

  it('deletes windows over for an hour (a key may hold an address) and keeps the others', async () => {
    const now = new Date();
    await db()
      .insertInto('rate_limit_hits')
      .values([
        { key: 'GET /backups|ip:198.51.100.9', window_started_at: new Date(now.getTime() - 2 * 3_600_000), hits: 3 },
        { key: 'GET /backups|user:recent', window_started_at: new Date(now.getTime() - 30 * 60_000), hits: 1 },
      ])
      .execute();
    expect(await deleteOldRateLimitWindows(db(), now)).toBeGreaterThanOrEqual(1);
    const keys = (await db().selectFrom('rate_limit_hits').select('key').execute()).map((r) => r.key);
    expect(keys).not.toContain('GET /backups|ip:198.51.100.9');
    expect(keys).toContain('GET /backups|user:recent');
  });
});

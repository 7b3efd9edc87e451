// The audit trail's hash chain: `archway audit verify` on a clean, a purged and a tampered trail; the portal's role cannot rewrite it.
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../src/db/database.js';
import { purgeOldIps } from '../../src/jobs/retention.job.js';
import { recordAudit } from '../../src/users/audit.js';
import { TEST_SECRETS } from '../harness/app.js';
import { runCli } from '../harness/cli.js';
import { createUser } from '../harness/users.js';
import { startPortalWorld, type PortalWorld } from '../harness/world.js';

let world: PortalWorld;
/** The table owner's connection: what someone with the database's admin password could do. */
let owner: Kysely<Database>;

beforeAll(async () => {
  world = await startPortalWorld();
  owner = new Kysely<Database>({
    dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: world.database.ownerUrl, max: 2 }) }),
  });
});
afterAll(async () => {
  await owner.destroy();
  await world.close();
});

const db = () => world.app.ctx.database.db;
const verify = () =>
  runCli(['audit', 'verify'], {
    env: { ARCHWAY_DATABASE_URL: world.database.url, ARCHWAY_SMTP_URL: 'smtp://127.0.0.1:9', ...TEST_SECRETS },
  });
const DAY = 86_400_000;

async function audited(action: string, at: Date, detail: Record<string, unknown> = {}): Promise<string> {
  await recordAudit(db(), { actor: 'cli', action, subject: null, ip: '198.51.100.7', detail, at });
  const row = await db().selectFrom('audit_log').select('id').where('action', '=', action).orderBy('id', 'desc').executeTakeFirstOrThrow();
  return String(row.id);
}

describe('archway audit verify', () => {
  let edited: string;
  let middle: string;

  it('passes on a clean chain, written one by one and all at once, and prints the count and head hash', async () => {
    const now = world.clock.now().getTime();
    for (let i = 0; i < 5; i++) await audited(`test.old-${i}`, new Date(now - (40 - i) * DAY), { i });
    // Twenty writers at once: the chain trigger orders them, and every link still holds.
    await Promise.all(Array.from({ length: 20 }, (_, i) => audited(`test.burst-${i}`, new Date(now - DAY), { i })));
    edited = await audited('test.to-edit', new Date(now - DAY), { amount: 10 });
    middle = await audited('test.middle', new Date(now - DAY));
    await audited('test.newest', new Date(now));

    const result = await verify();
    const count = Number(
      (
        await db()
          .selectFrom('audit_log')
          .select((eb) => eb.fn.countAll<string>().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    );
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const head = await db().selectFrom('audit_chain').select('head_hash').executeTakeFirstOrThrow();
    expect(result.stdout).toBe(`Audit trail intact: ${count} rows from its start; head hash ${head.head_hash.toString('hex')}\n`);
  });

  it('still passes after the retention purge, which removes whole old rows from the start of the chain', async () => {
    const before = await db().selectFrom('audit_log').select('action').where('action', 'like', 'test.old-%').execute();
    expect(before).toHaveLength(5);
    const report = await purgeOldIps(db(), world.clock, 30);
    expect(report.auditLog).toBeGreaterThanOrEqual(5);
    expect(await db().selectFrom('audit_log').select('action').where('action', 'like', 'test.old-%').execute()).toEqual([]);
    expect(await db().selectFrom('audit_log').select('action').where('action', '=', 'test.burst-0').execute()).toHaveLength(1);

    const result = await verify();
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^Audit trail intact: \d+ rows from row \d+ \(older rows were purged\); head hash [0-9a-f]{64}\n$/);
  });

  it('fails at the row that was edited directly in the database, and names it', async () => {
    await sql`update audit_log set detail = '{"amount": 1000}' where id = ${edited}`.execute(owner);
    const result = await verify();
    expect(result.code).toBe(1);
    expect(result.stdout).toContain(`(id ${edited},`);
    expect(result.stdout).toContain('test.to-edit): its content does not match its hash: the row was changed after it was written.');
    await sql`update audit_log set detail = '{"amount": 10}' where id = ${edited}`.execute(owner);
    expect((await verify()).code).toBe(0);
  });

  it('fails where a row was deleted from the middle, and when the newest rows were deleted', async () => {
    const { chain_seq: seq } = await db().selectFrom('audit_log').select('chain_seq').where('id', '=', middle).executeTakeFirstOrThrow();
    await sql`delete from audit_log where id = ${middle}`.execute(owner);
    const gap = await verify();
    expect(gap.code).toBe(1);
    expect(gap.stdout).toContain(`Audit trail broken at row ${seq} of the chain`);
    expect(gap.stdout).toContain(`row ${seq} of the chain is missing`);

    // A clean chain again (a fresh database would be simpler, but this is what an intruder would face).
    await sql`delete from audit_log where chain_seq >= ${seq}`.execute(owner);
    const truncated = await verify();
    expect(truncated.code).toBe(1);
    expect(truncated.stdout).toContain('the newest rows were removed');

    // With rows missing, the retention purge removes nothing: the evidence stays for verify.
    await sql`delete from audit_log where action = 'test.burst-3'`.execute(owner);
    world.clock.advance(40 * DAY);
    const count = async () =>
      Number(
        (
          await db()
            .selectFrom('audit_log')
            .select((eb) => eb.fn.countAll<string>().as('n'))
            .executeTakeFirstOrThrow()
        ).n,
      );
    const before = await count();
    expect((await purgeOldIps(db(), world.clock, 30)).auditLog).toBe('kept: the chain is broken');
    expect(await count()).toBe(before);
  });
});

describe("the portal's database role", () => {
  it('cannot update, delete or truncate audit rows, nor move the chain head', async () => {
    const user = await createUser(world.app);
    await recordAudit(db(), { actor: 'cli', action: 'test.protected', subject: user.id });
    const denied = async (statement: ReturnType<typeof sql>) => {
      await expect(statement.execute(db())).rejects.toThrow(/permission denied|must be owner/);
    };
    await denied(sql`update audit_log set detail = '{}' where action = 'test.protected'`);
    await denied(sql`delete from audit_log where action = 'test.protected'`);
    await denied(sql`truncate audit_log`);
    await denied(sql`update audit_chain set head_seq = 0`);
    await denied(sql`alter table audit_log disable trigger audit_chain_link`);
    // The purge it may call removes only rows older than the cutoff, from the start.
    await sql`select audit_purge(now() - interval '1 day')`.execute(db());
    expect(await db().selectFrom('audit_log').select('action').where('action', '=', 'test.protected').execute()).toHaveLength(1);
    // And it still writes its own rows, through the chain.
    const row = await db()
      .selectFrom('audit_log')
      .select(['chain_seq', 'hash'])
      .where('action', '=', 'test.protected')
      .executeTakeFirstOrThrow();
    expect(row.hash).toHaveLength(32);
  });
});

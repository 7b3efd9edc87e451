import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import { afterAll, describe, expect, it } from 'vitest';
import { connectDatabase, type DatabaseHandle } from '../../src/db/connect.js';
import { migrateToLatest } from '../../src/db/migrator.js';
import { MIGRATIONS_DIR } from '../../src/paths.js';
import { readdirSync } from 'node:fs';
import { createEmptyDatabase } from '../harness/database.js';

const ALL_MIGRATIONS = readdirSync(MIGRATIONS_DIR)
  .filter((f) => f.endsWith('.sql'))
  .map((f) => f.slice(0, -4))
  .sort();
const cleanups: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

async function applied(handle: DatabaseHandle): Promise<string[]> {
  const { rows } = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(handle.db);
  return rows.map((r) => r.name);
}

async function tables(handle: DatabaseHandle): Promise<string[]> {
  const { rows } = await sql<{ table_name: string }>`
    select table_name from information_schema.tables where table_schema = 'public' and table_name not like 'kysely_%' order by table_name`.execute(
    handle.db,
  );
  return rows.map((r) => r.table_name);
}

describe('migrations on a real PostgreSQL', () => {
  it('apply every file on an empty database and are a no-op the second time', async () => {
    const empty = await createEmptyDatabase();
    const handle = await connectDatabase({ databaseUrl: empty.url, dataDir: '/nonexistent' });
    cleanups.push(async () => {
      await handle.close();
      await empty.drop();
    });

    expect(await migrateToLatest(handle.db)).toEqual({ applied: ALL_MIGRATIONS });
    expect(await tables(handle)).toContain('audit_log');
    expect(await migrateToLatest(handle.db)).toEqual({ applied: [] });
    expect(await applied(handle)).toEqual(ALL_MIGRATIONS);
  });

  it('apply once when two instances migrate at the same time', async () => {
    const empty = await createEmptyDatabase();
    const first = await connectDatabase({ databaseUrl: empty.url, dataDir: '/nonexistent' });
    const second = await connectDatabase({ databaseUrl: empty.url, dataDir: '/nonexistent' });
    cleanups.push(async () => {
      await first.close();
      await second.close();
      await empty.drop();
    });

    const [a, b] = await Promise.all([migrateToLatest(first.db), migrateToLatest(second.db)]);
    // Exactly one of them applied the files; the other waited on the lock and found nothing to do.
    expect([a.applied, b.applied].sort((x, y) => x.length - y.length)).toEqual([[], ALL_MIGRATIONS]);
    expect(await applied(first)).toEqual(ALL_MIGRATIONS);
  });

  it('stop at a broken file, apply nothing of it, and name it', async () => {
    const empty = await createEmptyDatabase();
    const handle = await connectDatabase({ databaseUrl: empty.url, dataDir: '/nonexistent' });
    cleanups.push(async () => {
      await handle.close();
      await empty.drop();
    });
    const dir = mkdtempSync(path.join(tmpdir(), 'archway-migrations-'));
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    const { writeFileSync } = await import('node:fs');
    writeFileSync(path.join(dir, '0001_ok.sql'), 'create table one (id int);');
    writeFileSync(path.join(dir, '0002_broken.sql'), 'create table two (id int); select * from no_such_table;');

    await expect(migrateToLatest(handle.db, dir)).rejects.toThrow(/Migration 0002_broken failed: .*no_such_table/);
    // All pending files run in one transaction, so the good one is rolled back with the bad one.
    expect(await tables(handle)).toEqual([]);
  });
});

describe('migrations on the embedded database', () => {
  it('apply on a fresh PGlite store and are a no-op on the next start', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'archway-pglite-'));
    cleanups.push(async () => rmSync(dataDir, { recursive: true, force: true }));
    const first = await connectDatabase({ databaseUrl: null, dataDir });
    expect(first.kind).toBe('embedded');
    expect(await migrateToLatest(first.db)).toEqual({ applied: ALL_MIGRATIONS });
    expect(await tables(first)).toContain('audit_log');
    await first.close();

    const reopened = await connectDatabase({ databaseUrl: null, dataDir });
    cleanups.push(() => reopened.close());
    expect(await migrateToLatest(reopened.db)).toEqual({ applied: [] });
    expect(await applied(reopened)).toEqual(ALL_MIGRATIONS);
  });
});

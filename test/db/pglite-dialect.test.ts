import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectDatabase, type DatabaseHandle } from '../../src/db/connect.js';
import { migrateToLatest } from '../../src/db/migrator.js';

let dataDir: string;
let handle: DatabaseHandle;

beforeAll(async () => {
  dataDir = mkdtempSync(path.join(tmpdir(), 'archway-pglite-'));
  handle = await connectDatabase({ databaseUrl: null, dataDir });
  await migrateToLatest(handle.db);
});
afterAll(async () => {
  await handle.close();
  rmSync(dataDir, { recursive: true, force: true });
});

async function actions(): Promise<string[]> {
  const rows = await handle.db.selectFrom('audit_log').select('action').orderBy('id').execute();
  return rows.map((r) => r.action);
}

describe('the embedded database driver', () => {
  it('keeps a rolled-back transaction rolled back while another one overlaps it and commits', async () => {
    let firstInserted!: () => void;
    const firstHasInserted = new Promise<void>((resolve) => (firstInserted = resolve));

    const doomed = handle.db
      .transaction()
      .execute(async (trx) => {
        await trx.insertInto('audit_log').values({ action: 'doomed' }).execute();
        firstInserted();
        // Give the other transaction every chance to run (and commit) while this one is open.
        await new Promise((r) => setTimeout(r, 50));
        throw new Error('roll me back');
      })
      .catch((error: Error) => error.message);

    await firstHasInserted;
    const committed = handle.db.transaction().execute(async (trx) => {
      await trx.insertInto('audit_log').values({ action: 'kept' }).execute();
    });

    expect(await Promise.all([doomed, committed])).toEqual(['roll me back', undefined]);
    expect(await actions()).toEqual(['kept']);
  });

  it('lets a plain query wait for an open transaction instead of joining it', async () => {
    await handle.db.deleteFrom('audit_log').execute();
    let insideTransaction!: () => void;
    const opened = new Promise<void>((resolve) => (insideTransaction = resolve));
    const tx = handle.db.transaction().execute(async (trx) => {
      await trx.insertInto('audit_log').values({ action: 'uncommitted' }).execute();
      insideTransaction();
      await new Promise((r) => setTimeout(r, 30));
      throw new Error('abort');
    });
    await opened;
    const seenOutside = await sql<{ n: number }>`select count(*)::int as n from audit_log`.execute(handle.db);
    await expect(tx).rejects.toThrow('abort');
    expect(seenOutside.rows[0]?.n).toBe(0);
    expect(await actions()).toEqual([]);
  });
});

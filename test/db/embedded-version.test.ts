import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectDatabase } from '../../src/db/connect.js';
import { EMBEDDED_POSTGRES_MAJOR } from '../../src/db/embedded-version.js';
import { runCli } from '../harness/cli.js';

const dirs: string[] = [];
function freshDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'archway-pglite-'));
  dirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** A first-look project folder whose ./var/pglite was written by this PGlite, then changed by `damage`. */
let made: string;
beforeAll(async () => {
  made = freshDir();
  const handle = await connectDatabase({ databaseUrl: null, dataDir: path.join(made, 'var') });
  await handle.close();
});
function projectWith(damage: (pglite: string) => void): string {
  const cwd = freshDir();
  mkdirSync(path.join(cwd, 'var'), { mode: 0o700 });
  const pglite = path.join(cwd, 'var/pglite');
  // The copy stands for a directory an earlier start left behind.
  cpSync(path.join(made, 'var/pglite'), pglite, { recursive: true });
  damage(pglite);
  return cwd;
}

describe('the embedded database at start-up', () => {
  it('is the PostgreSQL major the start-up check expects', () => {
    expect(readFileSync(path.join(made, 'var/pglite/PG_VERSION'), 'utf8').trim()).toBe(EMBEDDED_POSTGRES_MAJOR);
  });

  it('names a data directory left by an older Archway (PGlite 0.3, PostgreSQL 17) and how to start over, instead of crashing', async () => {
    const cwd = projectWith((pglite) => writeFileSync(path.join(pglite, 'PG_VERSION'), '17\n'));
    const result = await runCli(['serve'], { cwd });
    expect(result.code).toBe(1);
    const dir = path.join(cwd, 'var/pglite');
    expect(result.stderr).toBe(
      `archway: The embedded database in ${dir} was made by an older Archway (PostgreSQL 17); this Archway's embedded PostgreSQL is ` +
        `${EMBEDDED_POSTGRES_MAJOR} and cannot open it. First look keeps only demo data: stop Archway, move that directory aside ` +
        '(or delete the whole data directory) and start again; for data you must keep, run Archway on PostgreSQL with ARCHWAY_DATABASE_URL.\n',
    );
    expect(result.stdout).not.toContain('listening');
    // Nothing was changed or left locked: moving the directory aside is all it takes.
    expect(readFileSync(path.join(dir, 'PG_VERSION'), 'utf8')).toBe('17\n');
    expect(existsSync(path.join(cwd, 'var/pglite.lock'))).toBe(false);
  });

  it('names a directory of the right version that PGlite cannot open, and frees its lock', async () => {
    const cwd = projectWith((pglite) => rmSync(path.join(pglite, 'global/pg_control')));
    const dataDir = path.join(cwd, 'var');
    await expect(connectDatabase({ databaseUrl: null, dataDir })).rejects.toThrow(
      new RegExp(
        `^The embedded database in ${path.join(dataDir, 'pglite').replace(/[.]/g, '\\.')} could not be opened \\(.+\\)\\. First look keeps only demo data`,
      ),
    );
    expect(existsSync(path.join(dataDir, 'pglite.lock'))).toBe(false);
  });
});

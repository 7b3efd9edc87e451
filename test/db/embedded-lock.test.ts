import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { connectDatabase } from '../../src/db/connect.js';

const dirs: string[] = [];
function freshDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'archway-lock-'));
  dirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describe('the embedded database lock', () => {
  it('refuses a second opener while the first has the database open, and frees it on close', async () => {
    const dataDir = freshDir();
    const first = await connectDatabase({ databaseUrl: null, dataDir });
    expect(readFileSync(path.join(dataDir, 'pglite.lock'), 'utf8')).toBe(`${process.pid}\n`);

    await expect(connectDatabase({ databaseUrl: null, dataDir })).rejects.toThrow(
      `The embedded database is in use by another Archway process (pid ${process.pid}). Stop it first`,
    );
    expect(await first.isReachable()).toBe(true);

    await first.close();
    expect(existsSync(path.join(dataDir, 'pglite.lock'))).toBe(false);
    const second = await connectDatabase({ databaseUrl: null, dataDir });
    expect(await second.isReachable()).toBe(true);
    await second.close();
  });

  it('takes over a lock left behind by a process that no longer runs', async () => {
    const dataDir = freshDir();
    // A pid that surely ended: a child that has already exited.
    const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout;
    writeFileSync(path.join(dataDir, 'pglite.lock'), `${gone}\n`);
    const handle = await connectDatabase({ databaseUrl: null, dataDir });
    expect(readFileSync(path.join(dataDir, 'pglite.lock'), 'utf8')).toBe(`${process.pid}\n`);
    await handle.close();
  });
});

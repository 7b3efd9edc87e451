// Keeps a second process from opening the embedded database while another one has it open.
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export class EmbeddedDatabaseInUse extends Error {
  constructor(readonly pid: number) {
    super(
      `The embedded database is in use by another Archway process (pid ${pid}). ` +
        'Stop it first (for example the running "archway serve"), or use PostgreSQL with ARCHWAY_DATABASE_URL.',
    );
    this.name = 'EmbeddedDatabaseInUse';
  }
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to someone else; it still holds the database.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * PGlite is PostgreSQL in this process's memory with its files under the data directory; two
 * processes writing those files at once corrupt them. The lock file names the holder's pid, so a
 * lock left by a crashed process is taken over instead of blocking forever.
 */
export function lockEmbeddedDatabase(dataDir: string): () => void {
  const file = path.join(dataDir, 'pglite.lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(file, `${process.pid}\n`, { flag: 'wx', mode: 0o600 });
      return () => rmSync(file, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const holder = Number.parseInt(readFileSync(file, 'utf8'), 10);
      if (Number.isInteger(holder) && holder > 0 && isRunning(holder)) throw new EmbeddedDatabaseInUse(holder);
      rmSync(file, { force: true });
    }
  }
  throw new Error('The embedded database lock file keeps reappearing; another process is starting at the same time.');
}

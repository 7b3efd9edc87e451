// Opens the database the configuration names: PostgreSQL through pg, or the embedded PGlite default.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import type { Database } from './database.js';
import { lockEmbeddedDatabase } from './embedded-lock.js';
import { checkEmbeddedDataDirectory, EmbeddedDatabaseUnusable } from './embedded-version.js';
import { PGliteDialect } from './pglite-dialect.js';

export interface DatabaseHandle {
  db: Kysely<Database>;
  kind: 'postgresql' | 'embedded';
  /** True when the database answers a trivial query within the timeout. */
  isReachable(timeoutMs?: number): Promise<boolean>;
  close(): Promise<void>;
}

export interface ConnectOptions {
  databaseUrl: string | null;
  dataDir: string;
  poolSize?: number;
}

export async function connectDatabase(options: ConnectOptions): Promise<DatabaseHandle> {
  if (options.databaseUrl !== null) {
    const pool = new pg.Pool({
      connectionString: options.databaseUrl,
      max: options.poolSize ?? 10,
      connectionTimeoutMillis: 5_000,
      // A query that hangs must not hold a request forever.
      statement_timeout: 30_000,
    });
    // An idle client that loses its server emits 'error'; without a listener that kills the process.
    pool.on('error', () => undefined);
    return handle(new Kysely<Database>({ dialect: new PostgresDialect({ pool }) }), 'postgresql');
  }
  const { PGlite } = await import('@electric-sql/pglite');
  const dir = path.join(options.dataDir, 'pglite');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const unlock = lockEmbeddedDatabase(options.dataDir);
  try {
    checkEmbeddedDataDirectory(dir);
    const pglite = await PGlite.create(dir).catch((error: unknown) => {
      // PGlite says only "failed to initialize properly"; the operator needs to know which directory.
      throw new EmbeddedDatabaseUnusable(dir, `could not be opened (${error instanceof Error ? error.message : String(error)})`);
    });
    const db = new Kysely<Database>({ dialect: new PGliteDialect(pglite) });
    return handle(db, 'embedded', unlock);
  } catch (error) {
    unlock();
    throw error;
  }
}

function handle(db: Kysely<Database>, kind: DatabaseHandle['kind'], afterClose: () => void = () => undefined): DatabaseHandle {
  return {
    db,
    kind,
    async isReachable(timeoutMs = 2_000) {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
      const probe = sql`select 1`.execute(db).then(
        () => true,
        () => false,
      );
      try {
        return await Promise.race([probe, timeout]);
      } finally {
        clearTimeout(timer);
      }
    },
    async close() {
      try {
        await db.destroy();
      } finally {
        afterClose();
      }
    },
  };
}

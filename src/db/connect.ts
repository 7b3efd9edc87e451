// Opens the database the configuration names: PostgreSQL through pg, or the embedded PGlite default.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { Kysely, PostgresDialect, sql } from 'kysely';
import type pg from 'pg';
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
  /** Tests shorten these to see a partition end a request quickly. */
  limits?: Partial<typeof DATABASE_LIMITS>;
}

/**
 * The bounds of one database call (docs/OPERATIONS.md): a connection in 5 s, an answer in 15 s
 * (the server itself cancels a statement after 10 s), a transaction idle for 30 s is ended by the server.
 */
export const DATABASE_LIMITS = { connectMs: 5_000, statementMs: 10_000, queryMs: 15_000, idleInTransactionMs: 30_000 };

/**
 * A checked-out client that loses its server (a restart, pg_terminate_backend) emits 'error'
 * after the pool has removed its idle listener: without this one the process exits. And pg's
 * query_timeout answers the caller but leaves the query on the connection, so that connection is
 * destroyed rather than handed to the next request behind a query that will never finish.
 */
function guardClient(client: pg.PoolClient): void {
  client.on('error', () => undefined);
  const query = client.query.bind(client) as (...args: unknown[]) => unknown;
  (client as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
    const result = query(...args);
    if (result instanceof Promise) {
      result.catch((error: unknown) => {
        // end() marks the client as ending at once (so the pool drops it on release) and cuts the hung query's socket.
        if (error instanceof Error && error.message === 'Query read timeout') client.end().catch(() => undefined);
      });
    }
    return result;
  };
}

export async function connectDatabase(options: ConnectOptions): Promise<DatabaseHandle> {
  if (options.databaseUrl !== null) {
    const limits = { ...DATABASE_LIMITS, ...options.limits };
    // Loaded here, like PGlite below: each mode loads only its own driver (first look starts faster).
    const { default: pgModule } = await import('pg');
    const pool = new pgModule.Pool({
      connectionString: options.databaseUrl,
      max: options.poolSize ?? 10,
      connectionTimeoutMillis: limits.connectMs,
      // The server ends a slow query; the client ends a wait for an answer that never comes (a silent partition).
      statement_timeout: limits.statementMs,
      query_timeout: limits.queryMs,
      // A session left in a transaction by a client that vanished releases its locks on the server's side too.
      idle_in_transaction_session_timeout: limits.idleInTransactionMs,
      // The kernel notices a peer that is gone without a word, instead of waiting for the next write.
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
    });
    // An idle client that loses its server emits 'error'; without a listener that kills the process.
    pool.on('error', () => undefined);
    pool.on('connect', guardClient);
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

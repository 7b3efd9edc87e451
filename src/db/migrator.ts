// Applies the forward-only SQL files in migrations/ under Kysely's migration lock.
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { MIGRATIONS_DIR } from '../paths.js';
import { Migrator, sql, type Kysely, type Migration, type MigrationProvider, type MigrationResult } from 'kysely';

const FILE_NAME = /^(\d{4})_[a-z0-9_]+\.sql$/;

/** Each migrations/NNNN_name.sql file is one migration; its name without .sql is its key. */
class SqlFileMigrationProvider implements MigrationProvider {
  constructor(private readonly dir: string) {}

  async getMigrations(): Promise<Record<string, Migration>> {
    const files = (await readdir(this.dir)).filter((f) => f.endsWith('.sql')).sort();
    const migrations: Record<string, Migration> = {};
    for (const file of files) {
      if (!FILE_NAME.test(file)) throw new Error(`Migration file name "${file}" is not NNNN_lower_snake.sql.`);
      const text = await readFile(path.join(this.dir, file), 'utf8');
      migrations[file.slice(0, -4)] = { up: async (db) => void (await sql.raw(text).execute(db)) };
    }
    return migrations;
  }
}

export interface MigrationReport {
  applied: string[];
}

export class MigrationFailed extends Error {
  constructor(
    readonly migration: string | undefined,
    cause: unknown,
  ) {
    super(`Migration ${migration ?? '(setup)'} failed: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = 'MigrationFailed';
  }
}

/**
 * Kysely runs all pending migrations in one transaction that first takes a PostgreSQL advisory
 * lock, so two instances starting at once apply each file exactly once and the second one waits.
 */
// Migrations predate and outlive any one schema type, so the migrator takes a database of any shape.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function migrateToLatest(db: Kysely<any>, dir: string = MIGRATIONS_DIR): Promise<MigrationReport> {
  const migrator = new Migrator({ db, provider: new SqlFileMigrationProvider(dir) });
  const { error, results } = await migrator.migrateToLatest();
  const failed = results?.find((r: MigrationResult) => r.status === 'Error');
  if (error) throw new MigrationFailed(failed?.migrationName, error);
  return { applied: (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName) };
}

/** Names of the files in migrations/ that the database has not applied; reads only, never creates Kysely's tables. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function pendingMigrations(db: Kysely<any>, dir: string = MIGRATIONS_DIR): Promise<string[]> {
  const migrator = new Migrator({ db, provider: new SqlFileMigrationProvider(dir) });
  return (await migrator.getMigrations()).filter((m) => m.executedAt === undefined).map((m) => m.name);
}

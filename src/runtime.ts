// Turns a Config into what a command runs on: resolved secrets and an open, migrated-if-asked database.
import type pino from 'pino';
import type { Config, Secrets } from './config.js';
import { connectDatabase, type DatabaseHandle } from './db/connect.js';
import { migrateToLatest } from './db/migrator.js';
import { loadOrCreateFirstLookSecrets } from './first-look/secrets.js';

export function resolveSecrets(config: Config, log: pino.Logger): Config & { secrets: Secrets } {
  if (config.secrets !== null) return config as Config & { secrets: Secrets };
  const { secrets, file, created } = loadOrCreateFirstLookSecrets(config.dataDir);
  log.warn(
    { file },
    created
      ? 'first-look mode: generated new secrets and kept them in this file (mode 0600)'
      : 'first-look mode: using the secrets kept in this file',
  );
  return Object.freeze({ ...config, secrets });
}

export async function openDatabase(config: Config, log: pino.Logger, options: { migrate: boolean }): Promise<DatabaseHandle> {
  const database = await connectDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir });
  if (database.kind === 'embedded') log.warn({ dir: config.dataDir }, 'first-look mode: embedded database under the data directory');
  if (options.migrate) {
    try {
      const { applied } = await migrateToLatest(database.db);
      log.info({ applied }, applied.length > 0 ? 'migrations applied' : 'database schema is up to date');
    } catch (error) {
      await database.close();
      throw error;
    }
  }
  return database;
}

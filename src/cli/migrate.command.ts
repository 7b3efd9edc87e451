// `archway migrate`: applies pending migrations and says which, safely alongside other instances.
import pino from 'pino';
import { loadConfig } from '../config.js';
import { migrateToLatest } from '../db/migrator.js';
import { loggerOptions } from '../log.js';
import { openDatabase } from '../runtime.js';
import type { Command } from './command.js';

export const migrateCommand: Command = {
  name: 'migrate',
  summary: 'Apply pending database migrations.',
  usage: `Usage: archway migrate

Applies the files in migrations/ that the database has not seen, in order, in one transaction
under a lock, so several instances may run it at once. Prints what it applied.`,
  options: {},
  async run() {
    const config = loadConfig();
    const log = pino(loggerOptions(config.logLevel === 'info' ? 'warn' : config.logLevel) as pino.LoggerOptions);
    const database = await openDatabase(config, log, { migrate: false });
    try {
      const { applied } = await migrateToLatest(database.db);
      process.stdout.write(applied.length === 0 ? 'Nothing to apply: the database is up to date.\n' : `Applied: ${applied.join(', ')}\n`);
      return 0;
    } finally {
      await database.close();
    }
  },
};

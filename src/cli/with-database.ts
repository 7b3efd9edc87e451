// Opens the configured database for one operator command, and closes it whatever the command does.
import pino from 'pino';
import type { Kysely } from 'kysely';
import { loadConfig, type Config } from '../config.js';
import type { Database } from '../db/database.js';
import { loggerOptions } from '../log.js';
import { createMailQueue, type MailQueue } from '../mail/mail.service.js';
import { openDatabase, resolveSecrets } from '../runtime.js';

export interface CommandContext {
  config: Config;
  db: Kysely<Database>;
  publicUrl: string;
  /** Mail is sealed into the queue with the configured key; the running portal sends it. */
  mail: MailQueue;
}

export async function withDatabase<T>(run: (context: CommandContext) => Promise<T>): Promise<T> {
  const loaded = loadConfig();
  const log = pino(loggerOptions(loaded.logLevel === 'info' ? 'warn' : loaded.logLevel) as pino.LoggerOptions);
  const config = resolveSecrets(loaded, log);
  const database = await openDatabase(config, log, { migrate: config.migrateOnStart });
  try {
    return await run({ config, db: database.db, publicUrl: config.publicUrl, mail: createMailQueue(config.secrets) });
  } finally {
    await database.close();
  }
}

/** "line N: problem" lines for an import that wrote nothing. */
export function problemLines(problems: Array<{ line: number; message: string }>): string {
  return problems.map((p) => `  ${p.line > 0 ? `line ${p.line}: ` : ''}${p.message}`).join('\n');
}

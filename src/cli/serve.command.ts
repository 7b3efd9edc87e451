// `archway serve`: runs the portal until SIGTERM or SIGINT, then finishes in-flight requests and exits.
import pino from 'pino';
import { createFirstLookAccounts, describeFirstLookAccounts } from '../accounts/first-look-accounts.js';
import { buildApp } from '../app.js';
import { fleetOfOne, loadConfig } from '../config.js';
import { startFirstLookBackupHost, type RunningFirstLookBackupHost } from '../first-look/backup-host.js';
import { startBackgroundJobs } from '../jobs/background-jobs.js';
import { loggerOptions } from '../log.js';
import { openDatabase, resolveSecrets } from '../runtime.js';
import type { Command } from './command.js';

export const serveCommand: Command = {
  name: 'serve',
  summary: 'Run the web portal.',
  usage: `Usage: archway serve

Runs the portal on ARCHWAY_HOST:ARCHWAY_PORT (default 127.0.0.1:3000).
Without ARCHWAY_DATABASE_URL it runs in first-look mode: an embedded database and generated
secrets under ARCHWAY_DATA_DIR (default ./var), loopback only, never with NODE_ENV=production;
without a backup host configured, also a backup host of its own under ARCHWAY_DATA_DIR/backup-host
(demo backups, the dispatcher's watch and sweep, a download server on the next port).
Applies pending migrations first when ARCHWAY_MIGRATE_ON_START is true (the first-look default).
Stops cleanly on SIGTERM or SIGINT: no new connections, in-flight requests finish.`,
  options: {},
  async run() {
    const loaded = loadConfig();
    const log = pino(loggerOptions(loaded.logLevel) as pino.LoggerOptions);
    let config = resolveSecrets(loaded, log);
    const database = await openDatabase(config, log, { migrate: config.migrateOnStart });
    // First look without a backup host gets one of its own on this computer (src/first-look/backup-host.ts).
    let firstLookHost: RunningFirstLookBackupHost | null = null;
    if (config.firstLookBackupHost !== null) {
      try {
        firstLookHost = await startFirstLookBackupHost(config, config.firstLookBackupHost, log);
      } catch (error) {
        await database.close();
        throw error;
      }
      config = Object.freeze({ ...config, backupHosts: fleetOfOne(firstLookHost.settings) });
    }
    const app = await buildApp({ config, database });
    const demo = await createFirstLookAccounts(app.ctx);

    let stopping = false;
    let stopJobs: () => Promise<void> = async () => undefined;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      app.log.info({ signal }, 'stopping: finishing in-flight requests');
      // A request stuck past the grace period must not keep the process alive forever.
      setTimeout(() => process.exit(1), 25_000).unref();
      // The background jobs finish what they have in hand before the database pool closes under them.
      stopJobs()
        .then(() => app.close())
        .then(() => firstLookHost?.stop())
        .then(
          () => process.exit(0),
          (error: unknown) => {
            app.log.error({ err: error }, 'error while stopping');
            process.exit(1);
          },
        );
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));

    let address: string;
    try {
      address = await app.listen({ host: config.host, port: config.port });
    } catch (error) {
      // Its child processes and download server would otherwise keep this failed start alive.
      await app.close();
      await firstLookHost?.stop();
      throw error;
    }
    app.log.info({ address, mode: config.mode }, `Archway is listening on ${address}`);
    // Straight to the console, never into the log: the passwords are shown this once.
    if (demo !== null) process.stdout.write(describeFirstLookAccounts(demo, address));
    // First look's dispatcher answers in milliseconds: its downloads show within seconds, not 20.
    stopJobs = startBackgroundJobs(app.ctx, { eventSyncIntervalMs: firstLookHost ? 2_000 : undefined });
    return new Promise<number>(() => undefined);
  },
};

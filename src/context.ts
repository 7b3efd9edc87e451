// The one context services, jobs and commands get what they need from: built once, next to buildApp.
import type { FastifyBaseLogger } from 'fastify';
import { createBackupFleet, type BackupFleet } from './backup-host/index.js';
import { BackgroundWork } from './background-work.js';
import type { Kysely } from 'kysely';
import type { Clock } from './clock.js';
import type { Config, Secrets } from './config.js';
import type { DatabaseHandle } from './db/connect.js';
import type { Database } from './db/database.js';
import { createMailQueue, type MailQueue } from './mail/mail.service.js';
import { Metrics } from './metrics/metrics.js';
import { createPasswordHasher, type PasswordHasher } from './users/password-hasher.js';
import { addressHashKey, type Regulator } from './users/regulation.js';

export interface AppContext {
  readonly config: Config & { secrets: Secrets };
  readonly database: DatabaseHandle;
  readonly db: Kysely<Database>;
  /** The one clock: routes and jobs alike, so a test moves time for both. */
  readonly clock: Clock;
  readonly log: FastifyBaseLogger;
  readonly passwords: PasswordHasher;
  /** The mail queue, sealing what it stores with the configured key. */
  readonly mail: MailQueue;
  /** Brute-force regulation of sign-in and second-step attempts (src/users/regulation.ts). */
  readonly regulator: Regulator;
  /** The backup hosts by name (src/backup-host/fleet.ts); each customer's archives live on one of them. */
  readonly backupHosts: BackupFleet;
  /** The Prometheus instruments of this app (src/metrics/); /metrics serves them when configured. */
  readonly metrics: Metrics;
  /** Work a request starts but does not wait for (the reset email); shutdown and tests wait for it. */
  readonly background: BackgroundWork;
}

/** What a background job reads: the settings, the database, the one clock, the log and the mail queue. */
export type JobContext = Pick<AppContext, 'config' | 'database' | 'clock' | 'log' | 'mail'>;
/** An archive job also talks to the backup host. */
export type ArchiveJobContext = JobContext & Pick<AppContext, 'backupHosts'>;

declare module 'fastify' {
  interface FastifyInstance {
    ctx: AppContext;
  }
}

export function createContext(deps: {
  config: Config & { secrets: Secrets };
  database: DatabaseHandle;
  clock: Clock;
  log: FastifyBaseLogger;
}): AppContext {
  const { config, database, clock } = deps;
  const passwords = createPasswordHasher(config);
  return Object.freeze({
    ...deps,
    backupHosts: createBackupFleet(config.backupHosts),
    background: new BackgroundWork(deps.log),
    db: database.db,
    mail: createMailQueue(config.secrets),
    passwords,
    metrics: new Metrics({
      db: database.db,
      clock,
      hashQueueLength: () => passwords.queued,
      processMetrics: config.metrics.listen !== null || config.metrics.token !== null,
    }),
    regulator: {
      db: database.db,
      clock,
      settings: config.auth.regulation,
      addressKey: addressHashKey(config.secrets.passwordPepper),
    },
  });
}

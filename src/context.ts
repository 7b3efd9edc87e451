// The one context services, jobs and commands get what they need from: built once, next to buildApp.
import type { FastifyBaseLogger } from 'fastify';
import type { Kysely } from 'kysely';
import type { Clock } from './clock.js';
import type { Config, Secrets } from './config.js';
import type { DatabaseHandle } from './db/connect.js';
import type { Database } from './db/database.js';
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
  /** Brute-force regulation of sign-in and second-step attempts (src/users/regulation.ts). */
  readonly regulator: Regulator;
}

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
  return Object.freeze({
    ...deps,
    db: database.db,
    passwords: createPasswordHasher(config),
    regulator: {
      db: database.db,
      clock,
      settings: config.auth.regulation,
      addressKey: addressHashKey(config.secrets.passwordPepper),
    },
  });
}

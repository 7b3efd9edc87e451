// The backup host the archive pages and jobs talk to: one client per app configuration, or null when none is set.
import { backupHostFromSettings, type BackupHost } from '../backup-host/index.js';
import type { Config } from '../config.js';

// Keyed by the config object rather than a Fastify decorator, so the archive pages and the
// background jobs (started by `serve`, or by tests) share one client without owning the app.
const clients = new WeakMap<object, BackupHost>();

/**
 * The client for `config.backupHost`, made on first use; null when no backup host is configured.
 * Throws BackupHostConfigError (a BackupHostError) when the settings cannot work, e.g. the SSH key
 * file is missing, so callers treat it like an unreachable host.
 */
export function archiveBackupHost(config: Pick<Config, 'backupHost'>): BackupHost | null {
  if (config.backupHost === null) return null;
  let client = clients.get(config);
  if (client === undefined) {
    client = backupHostFromSettings(config.backupHost);
    clients.set(config, client);
  }
  return client;
}

// The portal's backup hosts by name: each client made on first use, and which host serves a customer.
import type { BackupHost } from './backup-host.js';
import { BackupHostConfigError } from './errors.js';
import { backupHostFromSettings, type BackupHostSettings } from './factory.js';
import type { NamedBackupHost } from './hosts-file.js';

export interface FleetSettings {
  hosts: NamedBackupHost<BackupHostSettings>[];
  defaultHost: string | null;
}

/** Where a customer's archives are made: a host of the fleet, or why there is none. */
export type HostAssignment =
  | { ok: true; name: string }
  /** `none`: the account names no host and the fleet has no default; `unknown`: it names one the fleet lacks. */
  | { ok: false; reason: 'none' | 'unknown'; name: string | null };

export interface BackupFleet {
  readonly names: readonly string[];
  /**
   * The named host's client, made on first use; null when the fleet has no such host. Throws
   * BackupHostConfigError (a BackupHostError) when its settings cannot work, e.g. the SSH key file
   * is missing, so callers treat it like an unreachable host.
   */
  get(name: string): BackupHost | null;
  /** Like get, but a host the fleet lacks (removed from the hosts file) is a BackupHostConfigError too. */
  use(name: string): BackupHost;
  /** The host for an account's `backup_host`; an empty one means the fleet's default, if it has one. */
  assign(backupHost: string | null): HostAssignment;
}

export function createBackupFleet(settings: FleetSettings): BackupFleet {
  const byName = new Map(settings.hosts.map((h) => [h.name, h.settings]));
  const clients = new Map<string, BackupHost>();
  const get = (name: string): BackupHost | null => {
    const known = byName.get(name);
    if (known === undefined) return null;
    let client = clients.get(name);
    if (client === undefined) {
      client = backupHostFromSettings(known);
      clients.set(name, client);
    }
    return client;
  };
  return Object.freeze({
    names: Object.freeze(settings.hosts.map((h) => h.name)),
    get,
    use(name: string) {
      const client = get(name);
      if (client === null) throw new BackupHostConfigError(`the backup host "${name}" is not in ARCHWAY_BACKUP_HOSTS_FILE any more`);
      return client;
    },
    assign(backupHost: string | null): HostAssignment {
      const name = backupHost ?? settings.defaultHost;
      if (name === null) return { ok: false, reason: 'none', name: null };
      return byName.has(name) ? { ok: true, name } : { ok: false, reason: 'unknown', name };
    },
  });
}

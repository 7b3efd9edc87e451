// Builds a BackupHost from plain settings: SSH in production, the local dispatcher for a first look.
import { createBackupHost, type BackupHost } from './backup-host.js';
import { createLocalTransport } from './local.transport.js';
import { createSshTransport } from './ssh.transport.js';

export interface SshBackupHostSettings {
  host: string;
  port: number;
  user: string;
  privateKeyPath: string;
  privateKeyPassphrase?: string;
  hostKeyFingerprint: string;
  connectTimeoutMs?: number;
  callTimeoutMs?: number;
  localAddress?: string;
}

export interface LocalBackupHostSettings {
  localDispatcherConfig: string;
  localDispatcherPath?: string;
  callTimeoutMs?: number;
}

export type BackupHostSettings = SshBackupHostSettings | LocalBackupHostSettings;

export function isLocalSettings(s: BackupHostSettings): s is LocalBackupHostSettings {
  return 'localDispatcherConfig' in s;
}

export function backupHostFromSettings(settings: BackupHostSettings): BackupHost {
  if (isLocalSettings(settings)) {
    return createBackupHost(
      createLocalTransport({ dispatcherConfigPath: settings.localDispatcherConfig, dispatcherPath: settings.localDispatcherPath, callTimeoutMs: settings.callTimeoutMs }),
    );
  }
  return createBackupHost(createSshTransport(settings));
}

// Builds a BackupHost from plain settings: SSH in production, the local dispatcher for a first look.
import { createBackupHost, type BackupHost } from './backup-host.js';
import { createLocalTransport } from './local.transport.js';
import { createSshTransport, type SshTransportConfig } from './ssh.transport.js';
import type { Transport } from './transport.js';

/** The SSH transport's own settings: one definition, so config, factory and transport cannot drift apart. */
export type SshBackupHostSettings = SshTransportConfig;

export interface LocalBackupHostSettings {
  localDispatcherConfig: string;
  localDispatcherPath?: string;
  callTimeoutMs?: number;
}

export type BackupHostSettings = SshBackupHostSettings | LocalBackupHostSettings;

export function isLocalSettings(s: BackupHostSettings): s is LocalBackupHostSettings {
  return 'localDispatcherConfig' in s;
}

/** The raw transport, for callers that must see the dispatcher's answers uninterpreted (`archway doctor`). */
export function transportFromSettings(settings: BackupHostSettings): Transport {
  if (isLocalSettings(settings)) {
    return createLocalTransport({
      dispatcherConfigPath: settings.localDispatcherConfig,
      dispatcherPath: settings.localDispatcherPath,
      callTimeoutMs: settings.callTimeoutMs,
    });
  }
  return createSshTransport(settings);
}

export function backupHostFromSettings(settings: BackupHostSettings): BackupHost {
  return createBackupHost(transportFromSettings(settings));
}

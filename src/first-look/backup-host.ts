// First look's own backup host under <data dir>/backup-host: the real dispatcher, its watch and sweep, demo backups, a download server.
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import path from 'node:path';
import type pino from 'pino';
import { DEMO_CUSTOMER_DOMAIN } from '../accounts/first-look-accounts.js';
import { DEFAULT_LOCAL_DISPATCHER, type LocalBackupHostSettings } from '../backup-host/index.js';
import type { Config, FirstLookBackupHostConfig } from '../config.js';
import { generateDemoBackups } from './demo-backups.js';
import { startDispatcherProcesses } from './dispatcher-processes.js';
import { startDownloadServer } from './download-server.js';

export interface FirstLookBackupHostLayout {
  root: string;
  backupRoot: string;
  archiveRoot: string;
  linkRoot: string;
  stateDir: string;
  secureLinkSecretFile: string;
  downloadLog: string;
  dispatcherConfig: string;
}

export function firstLookBackupHostLayout(dataDir: string, ownBackups: string | null): FirstLookBackupHostLayout {
  const root = path.join(dataDir, 'backup-host');
  return {
    root,
    backupRoot: ownBackups ?? path.join(root, 'backups'),
    archiveRoot: path.join(root, 'archives'),
    linkRoot: path.join(root, 'links'),
    stateDir: path.join(root, 'state'),
    secureLinkSecretFile: path.join(root, 'secure-link.secret'),
    downloadLog: path.join(root, 'log', 'download.log'),
    dispatcherConfig: path.join(root, 'dispatcher.json'),
  };
}

/** mkdir -p, then the mode even when it existed: the install script's `dir` without the chown only root can do. */
function dir(mode: number, target: string): void {
  mkdirSync(target, { recursive: true, mode });
  chmodSync(target, mode);
}

/** The name of the running user's own group: the dispatcher hands archives to it instead of www-data. */
export function ownGroupName(): string {
  const gid = userInfo().gid;
  for (const line of readFileSync('/etc/group', 'utf8').split('\n')) {
    const [name, , id] = line.split(':');
    if (name && id === String(gid)) return name;
  }
  throw new Error(`first-look backup host: group id ${gid} has no name in /etc/group`);
}

/** Atomic replace, as the install script's `put`: the dispatcher never reads half a config. */
function put(file: string, text: string, mode: number): void {
  const temporary = `${file}.new.${process.pid}`;
  writeFileSync(temporary, text, { mode });
  chmodSync(temporary, mode);
  renameSync(temporary, file);
}

/**
 * Makes the layout a real backup host has after deploy/install-backup-host.sh, with its modes: the
 * secret once (kept across starts), the demo backups once (a folder made whole, then renamed into
 * place, so an interrupted first start never leaves half of them), the download log.
 */
export function prepareFirstLookBackupHost(layout: FirstLookBackupHostLayout, log: pino.Logger): void {
  dir(0o700, layout.root);
  dir(0o750, layout.archiveRoot);
  dir(0o750, layout.linkRoot);
  dir(0o700, layout.stateDir);
  dir(0o755, path.dirname(layout.downloadLog));
  if (!existsSync(layout.secureLinkSecretFile)) {
    writeFileSync(layout.secureLinkSecretFile, `${randomBytes(32).toString('base64url')}\n`, { mode: 0o600, flag: 'wx' });
  }
  chmodSync(layout.secureLinkSecretFile, 0o600);
  closeSync(openSync(layout.downloadLog, 'a', 0o640));
  const demoBackups = path.join(layout.root, 'backups');
  if (layout.backupRoot === demoBackups && !existsSync(demoBackups)) {
    const partial = `${demoBackups}.partial`;
    rmSync(partial, { recursive: true, force: true });
    dir(0o755, partial);
    const started = process.hrtime.bigint();
    const made = generateDemoBackups(path.join(partial, DEMO_CUSTOMER_DOMAIN), DEMO_CUSTOMER_DOMAIN, new Date());
    renameSync(partial, demoBackups);
    const ms = Math.round(Number(process.hrtime.bigint() - started) / 1e6);
    log.info({ dir: demoBackups, ...made, ms }, 'first-look backup host: generated the demo backups');
  }
}

function dispatcherConfigText(layout: FirstLookBackupHostLayout, downloadBaseUrl: string, ipRetentionDays: number): string {
  const config = {
    backupRoot: layout.backupRoot,
    archiveRoot: layout.archiveRoot,
    linkRoot: layout.linkRoot,
    stateDir: layout.stateDir,
    secureLinkSecretFile: layout.secureLinkSecretFile,
    downloadBaseUrl,
    linkTtlSeconds: 60,
    linkGraceSeconds: 300,
    archiveRetentionDays: 7,
    // The portal's period, so /what-we-store is true of this backup host too.
    ipRetentionDays,
    downloadLog: layout.downloadLog,
    maxRequestBytes: 65536,
    nginxGroup: ownGroupName(),
  };
  return `${JSON.stringify(config, null, 2)}\n`;
}

export interface RunningFirstLookBackupHost {
  settings: LocalBackupHostSettings;
  downloadUrl: string;
  stop(): Promise<void>;
}

/** The download server's port: as configured, else the portal's + 1, else (taken, or the portal's is 0) any free one. */
async function listenDownloads(config: Config, own: FirstLookBackupHostConfig, layout: FirstLookBackupHostLayout, log: pino.Logger) {
  const options = {
    host: config.host,
    linkRoot: layout.linkRoot,
    secureLinkSecretFile: layout.secureLinkSecretFile,
    accessLog: layout.downloadLog,
    portalUrl: `${config.publicUrl}/backups`,
  };
  if (own.downloadPort !== null) return startDownloadServer({ ...options, port: own.downloadPort });
  if (config.port === 0 || config.port === 65535) return startDownloadServer({ ...options, port: 0 });
  try {
    return await startDownloadServer({ ...options, port: config.port + 1 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw error;
    log.warn({ port: config.port + 1 }, 'first-look backup host: port taken, the download server takes a free one');
    return startDownloadServer({ ...options, port: 0 });
  }
}

/**
 * Sets up and starts first look's backup host: the download server first, so that dispatcher.json
 * (rewritten on each start) names the port it really has, then `watch` and `sweep`. The portal
 * reaches the dispatcher through the local transport with the returned settings.
 */
export async function startFirstLookBackupHost(
  config: Config,
  own: FirstLookBackupHostConfig,
  log: pino.Logger,
): Promise<RunningFirstLookBackupHost> {
  const layout = firstLookBackupHostLayout(config.dataDir, own.ownBackups);
  prepareFirstLookBackupHost(layout, log);
  const downloads = await listenDownloads(config, own, layout, log);
  try {
    put(layout.dispatcherConfig, dispatcherConfigText(layout, downloads.url, config.auth.ipRetentionDays), 0o600);
  } catch (error) {
    await downloads.close();
    throw error;
  }
  const stopDispatcher = startDispatcherProcesses({ dispatcherPath: DEFAULT_LOCAL_DISPATCHER, configPath: layout.dispatcherConfig, log });
  log.info({ backups: layout.backupRoot, downloads: downloads.url }, 'first-look backup host: running the dispatcher on this computer');
  return {
    settings: { localDispatcherConfig: layout.dispatcherConfig },
    downloadUrl: downloads.url,
    async stop() {
      // Downloads still running are cut and logged first, so that watch records them before it stops.
      await downloads.close();
      await stopDispatcher();
    },
  };
}

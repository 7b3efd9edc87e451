// Where the dispatcher keeps its own state; every name is built from validated ids only.
import { join } from 'node:path';
import type { DispatcherConfig } from './config.js';
import { ensureDir } from './fsutil.js';

export function initState(cfg: DispatcherConfig): void {
  // Token hashes, locks and records are root-only: nothing on the host besides root needs them.
  ensureDir(cfg.stateDir, 0o700);
  for (const sub of ['archives', 'tokens', 'links', 'locks', 'rates']) ensureDir(join(cfg.stateDir, sub), 0o700);
}

export const paths = {
  record: (cfg: DispatcherConfig, id: string) => join(cfg.stateDir, 'archives', `${id}.json`),
  progress: (cfg: DispatcherConfig, id: string) => join(cfg.stateDir, 'archives', `${id}.progress.json`),
  tokenHash: (cfg: DispatcherConfig, id: string) => join(cfg.stateDir, 'tokens', `${id}.sha256`),
  linkRecord: (cfg: DispatcherConfig, linkId: string) => join(cfg.stateDir, 'links', `${linkId}.json`),
  archiveMutex: (cfg: DispatcherConfig, id: string) => join(cfg.stateDir, 'locks', `${id}.mutex`),
  customerMutex: (cfg: DispatcherConfig, customer: string) => join(cfg.stateDir, 'locks', `${customer}.mutex`),
  buildLock: (cfg: DispatcherConfig, customer: string) => join(cfg.stateDir, 'locks', `${customer}.build`),
  eventsLog: (cfg: DispatcherConfig) => join(cfg.stateDir, 'events.log'),
  eventsMutex: (cfg: DispatcherConfig) => join(cfg.stateDir, 'locks', 'events.mutex'),
  watchState: (cfg: DispatcherConfig) => join(cfg.stateDir, 'watch.json'),
  watchLock: (cfg: DispatcherConfig) => join(cfg.stateDir, 'locks', 'watch.lock'),
  callLog: (cfg: DispatcherConfig) => join(cfg.stateDir, 'dispatcher.log'),
  callLogMutex: (cfg: DispatcherConfig) => join(cfg.stateDir, 'locks', 'dispatcher-log.mutex'),
  sweepLock: (cfg: DispatcherConfig) => join(cfg.stateDir, 'locks', 'sweep.lock'),
  retentionHints: (cfg: DispatcherConfig) => join(cfg.stateDir, 'retention.json'),
  rateLedger: (cfg: DispatcherConfig, action: string) => join(cfg.stateDir, 'rates', `${action}.json`),
  ratesMutex: (cfg: DispatcherConfig) => join(cfg.stateDir, 'locks', 'rates.mutex'),
  archiveFile: (cfg: DispatcherConfig, id: string) => join(cfg.archiveRoot, `${id}.tar`),
  partialFile: (cfg: DispatcherConfig, id: string) => join(cfg.archiveRoot, `${id}.tar.partial`),
  linkDir: (cfg: DispatcherConfig, linkId: string) => join(cfg.linkRoot, linkId),
};

// ping: proves the SSH path, sudo and configuration work, and reports whether the roots are there.
import { statSync } from 'node:fs';
import { DISPATCHER_VERSION, type PingResult } from '../../protocol/index.js';
import { freeBytes } from './archives.js';
import { nowIso } from './clock.js';
import type { DispatcherConfig } from './config.js';

function isDir(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

export function ping(cfg: DispatcherConfig): PingResult {
  let free: number | null;
  try {
    free = freeBytes(cfg.archiveRoot);
  } catch {
    free = null;
  }
  return {
    version: DISPATCHER_VERSION,
    time: nowIso(),
    roots: { backup: isDir(cfg.backupRoot), archive: isDir(cfg.archiveRoot), link: isDir(cfg.linkRoot) },
    freeBytes: free,
  };
}

// backups.list: the customer's snapshot directories, newest first, without following symlinks out.
import { lstatSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { join, sep } from 'node:path';
import { isSnapshotName, type BackupsListRequest, type BackupsListResult, type SnapshotInfo } from '../../protocol/index.js';
import type { DispatcherConfig } from './config.js';
import { customerDir } from './snapshot-path.js';

export function listBackups(cfg: DispatcherConfig, req: BackupsListRequest): BackupsListResult {
  const cdir = customerDir(cfg, req.customer);
  const snapshots: SnapshotInfo[] = [];
  for (const name of readdirSync(cdir)) {
    // Names the protocol could not ask for again are not shown (rsnapshot's `.sync`, temp dirs).
    if (!isSnapshotName(name)) continue;
    const full = join(cdir, name);
    let real: string;
    try {
      real = realpathSync(full);
    } catch {
      continue;
    }
    if (!real.startsWith(cdir + sep) || !statSync(real).isDirectory()) continue;
    // mtime of the snapshot directory: rsnapshot and rsync --link-dest both touch it on completion.
    const time = lstatSync(real).mtime.toISOString();
    // Sizes need a full walk (millions of files); archive.create estimates it when it matters.
    snapshots.push({ name, time, sizeBytes: null });
  }
  snapshots.sort((a, b) => (a.time < b.time ? 1 : a.time > b.time ? -1 : a.name.localeCompare(b.name)));
  return { snapshots };
}

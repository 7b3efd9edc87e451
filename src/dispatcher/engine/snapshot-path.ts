// Resolves customer and snapshot directories by realpath and refuses anything outside its root.
import { lstatSync, realpathSync } from 'node:fs';
import { join, sep } from 'node:path';
import type { DispatcherConfig } from './config.js';
import { fail } from './failure.js';

function inside(parent: string, child: string): boolean {
  return child.startsWith(parent.endsWith(sep) ? parent : parent + sep);
}

function real(path: string): string | null {
  try {
    return realpathSync(path);
  } catch {
    return null;
  }
}

/** BACKUP_ROOT/<customer> as a real path inside the real BACKUP_ROOT; names were pattern-checked first. */
export function customerDir(cfg: DispatcherConfig, customer: string): string {
  const root = real(cfg.backupRoot);
  if (root === null) fail('misconfigured', `backupRoot ${cfg.backupRoot} missing`);
  const dir = real(join(root, customer));
  if (dir === null) fail('no_backups', `no directory for ${customer}`);
  if (!inside(root, dir) || !lstatSync(dir).isDirectory()) fail('no_backups', `customer dir of ${customer} resolves outside backupRoot`);
  return dir;
}

/** The snapshot's real directory; a symlink is allowed only when it stays inside the customer's directory. */
export function snapshotDir(cfg: DispatcherConfig, customer: string, snapshot: string): string {
  const cdir = customerDir(cfg, customer);
  const dir = real(join(cdir, snapshot));
  if (dir === null) fail('no_such_backup', `snapshot ${snapshot} of ${customer} missing`);
  if (!inside(cdir, dir)) fail('outside_backup', `snapshot ${snapshot} of ${customer} resolves outside the customer dir`);
  if (!lstatSync(dir).isDirectory()) fail('no_such_backup', `snapshot ${snapshot} of ${customer} is not a directory`);
  return dir;
}

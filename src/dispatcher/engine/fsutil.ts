// Small durable file helpers: atomic JSON replace, fsync of files and directories, safe reads.
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync, chmodSync, lstatSync } from 'node:fs';
import { dirname } from 'node:path';

export function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Write to a temp file, fsync, rename over the target: readers see the old or the new file, never half. */
export function writeFileAtomic(path: string, data: string, mode = 0o600, durable = true): void {
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w', mode);
  try {
    writeSync(fd, data);
    if (durable) fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  if (durable) fsyncDir(dirname(path));
}

export function writeJsonAtomic(path: string, value: unknown, mode = 0o600, durable = true): void {
  writeFileAtomic(path, `${JSON.stringify(value)}\n`, mode, durable);
}

/** Reads a JSON file we wrote ourselves; missing or unparsable gives null rather than throwing. */
export function readJsonOrNull<T>(path: string): T | null {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if (isErrno(e, 'ENOENT')) return null;
    throw e;
  }
  try {
    return JSON.parse(text) as T;
  } catch {
    return null;
  }
}

/** Creates a directory (and parents) and forces its mode, since umask may have loosened it. */
export function ensureDir(path: string, mode: number): void {
  mkdirSync(path, { recursive: true, mode });
  const st = lstatSync(path);
  if ((st.mode & 0o7777) !== mode) chmodSync(path, mode);
}

export function isErrno(e: unknown, code: string): boolean {
  return typeof e === 'object' && e !== null && (e as { code?: unknown }).code === code;
}

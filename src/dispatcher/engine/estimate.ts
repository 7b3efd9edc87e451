// Estimates the size of a snapshot's tar stream from a `find` listing, within a time budget.
import { spawn } from 'node:child_process';

const BLOCK = 512;
const RECORD = 10240;
const SPACE = 0x20;

const roundUp = (n: number, to: number) => Math.ceil(n / to) * to;

/** Adds what GNU tar writes for one entry: header, long-name blocks, data rounded to 512. */
function entryBytes(type: number, size: number, nameBytes: number): number {
  let total = BLOCK;
  // GNU format stores names of 100 bytes or more in a preceding ././@LongLink entry.
  if (nameBytes >= 100) total += BLOCK + roundUp(nameBytes + 1, BLOCK);
  if (type === 0x66 /* f */) total += roundUp(size, BLOCK); // hard links counted in full: over-estimating is harmless
  return total;
}

/**
 * Sums what `tar --format=gnu` will write for the tree: headers, data, two zero blocks, padding to a
 * 10 KiB record. GNU find does the walk (-P: never follows symlinks), several times faster than
 * lstat from Node on trees of small files. Returns null past budgetMs (millions of files): progress
 * is then shown without a percentage rather than making archive.create slow.
 */
export function estimateTarBytes(findPath: string, root: string, budgetMs: number): Promise<number | null> {
  return new Promise((resolve) => {
    let total = BLOCK; // the "./" entry
    let rest: Buffer = Buffer.alloc(0);
    let settled = false;
    const done = (v: number | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(v);
    };
    // %y type, %s size, %P path below root; NUL-terminated so any byte may appear in a name.
    const find = spawn(findPath, ['-P', root, '-mindepth', '1', '-printf', '%y %s %P\\0'], {
      stdio: ['ignore', 'pipe', 'ignore'],
      cwd: '/',
      env: { LC_ALL: 'C' },
    });
    const timer = setTimeout(() => {
      find.kill('SIGKILL');
      done(null);
    }, budgetMs);
    find.stdout.on('data', (chunk: Buffer) => {
      const buf = rest.length > 0 ? Buffer.concat([rest, chunk]) : chunk;
      let start = 0;
      for (let end = buf.indexOf(0, start); end !== -1; end = buf.indexOf(0, start)) {
        const type = buf[start] ?? 0;
        const sizeEnd = buf.indexOf(SPACE, start + 2);
        const size = Number(buf.toString('latin1', start + 2, sizeEnd));
        const nameBytes = 2 + (end - sizeEnd - 1) + (type === 0x64 /* d */ ? 1 : 0);
        total += entryBytes(type, size, nameBytes);
        start = end + 1;
      }
      rest = Buffer.from(buf.subarray(start));
    });
    find.on('error', () => done(null));
    // find exits non-zero when an entry vanished mid-walk; the estimate is still good enough.
    find.on('close', (code) => done(code === null ? null : roundUp(total + 2 * BLOCK, RECORD)));
  });
}

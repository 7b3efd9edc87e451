// Reads a log file line by line through a fixed buffer, so memory stays flat however large the file is.
import { readSync, writeSync } from 'node:fs';

const CHUNK = 1 << 20;

/**
 * Calls `fn(line, start, end)` for each whole line between `from` and `to` (end excludes the newline);
 * stops early when fn returns false. Returns the offset after the last whole line read. A line longer
 * than the buffer is handed over as its first CHUNK bytes, so a runaway line cannot stall the sweep.
 */
export function forEachLine(
  fd: number,
  from: number,
  to: number,
  fn: (line: Buffer, start: number, end: number) => boolean | void,
): number {
  const buf = Buffer.alloc(CHUNK);
  let pos = from;
  while (pos < to) {
    const n = readSync(fd, buf, 0, Math.min(CHUNK, to - pos), pos);
    if (n === 0) break;
    let start = 0;
    for (let nl = buf.indexOf(0x0a, 0); nl !== -1 && nl < n; nl = buf.indexOf(0x0a, start)) {
      if (fn(buf.subarray(start, nl), pos + start, pos + nl) === false) return pos + start;
      start = nl + 1;
    }
    if (start === 0) {
      if (n < CHUNK) break; // an unfinished last line: not ours to judge yet
      const nl = skipTo(fd, pos + n, to);
      if (nl === -1) break;
      if (fn(buf.subarray(0, n), pos, nl) === false) return pos;
      pos = nl + 1;
      continue;
    }
    pos += start;
  }
  return pos;
}

/** Offset of the next newline at or after `pos` before `to`, or -1. */
function skipTo(fd: number, pos: number, to: number): number {
  const buf = Buffer.alloc(4096);
  for (let p = pos; p < to; p += buf.length) {
    const n = readSync(fd, buf, 0, Math.min(buf.length, to - p), p);
    if (n === 0) return -1;
    const i = buf.subarray(0, n).indexOf(0x0a);
    if (i !== -1) return p + i;
  }
  return -1;
}

/** Copies bytes `from`..`to` of one file to the end of another through a fixed buffer. */
export function copyRange(src: number, dst: number, from: number, to: number): void {
  const buf = Buffer.alloc(CHUNK);
  for (let pos = from; pos < to;) {
    const n = readSync(src, buf, 0, Math.min(CHUNK, to - pos), pos);
    if (n === 0) break;
    writeSync(dst, buf, 0, n);
    pos += n;
  }
}

// Backup trees for tests: hostile names and links, and a bigger tree that takes a moment to archive.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { linkSync, lstatSync, mkdirSync, readdirSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** GNU tar's `--quoting-style=escape` spelling of a raw name, so listings can be compared exactly. */
export function tarEscape(name: Buffer): string {
  const special: Record<number, string> = { 7: '\\a', 8: '\\b', 9: '\\t', 10: '\\n', 11: '\\v', 12: '\\f', 13: '\\r', 92: '\\\\' };
  let s = '';
  for (const b of name) {
    if (special[b]) s += special[b];
    else if (b >= 0x20 && b < 0x7f) s += String.fromCharCode(b);
    else s += `\\${b.toString(8).padStart(3, '0')}`;
  }
  return s;
}

/** Writes a snapshot full of things an archiver can get wrong, and returns paths that must never leak. */
export function writeHostileSnapshot(dir: string, outsideFile: string): void {
  mkdirSync(join(dir, 'sub', 'deep'), { recursive: true });
  mkdirSync(join(dir, 'empty-dir'));
  writeFileSync(join(dir, 'plain.txt'), 'plain text\n');
  writeFileSync(join(dir, 'sub', 'deep', 'random.bin'), randomBytes(50_000));
  linkSync(join(dir, 'plain.txt'), join(dir, 'hardlink.txt'));
  // Links out of the tree must be archived as links, never followed.
  symlinkSync('/etc', join(dir, 'etc-link'));
  symlinkSync('/etc/passwd', join(dir, 'passwd-link'));
  symlinkSync(outsideFile, join(dir, 'other-customer-link'));
  symlinkSync('../../../../../../../../etc/shadow', join(dir, 'relative-escape'));
  symlinkSync('sub/deep/random.bin', join(dir, 'inner-link'));
  // A FIFO would hang a reader that opens it; tar must store it as a FIFO entry.
  const fifo = spawnSync('mkfifo', [join(dir, 'pipe')]);
  if (fifo.status !== 0) throw new Error('mkfifo failed');
  // Names that look like devices, options or shell syntax.
  for (const name of [
    'null',
    'sda1',
    'console',
    '-rf',
    '--checkpoint-action=exec=touch PWNED',
    '--to-command=id',
    '*',
    '$(id)',
    '; id',
    'a b c',
  ]) {
    writeFileSync(join(dir, name), `content of ${name}\n`);
  }
  // Names with a newline, non-UTF-8 bytes, a backslash, and a path over 100 bytes (GNU long name).
  const raw = (s: Buffer) => Buffer.concat([Buffer.from(`${dir}/`), s]);
  writeFileSync(raw(Buffer.from('new\nline.txt')), 'newline\n');
  writeFileSync(raw(Buffer.from([0x62, 0x61, 0x64, 0xff, 0xfe, 0x2e, 0x74, 0x78, 0x74])), 'latin-1 bytes\n');
  writeFileSync(raw(Buffer.from('back\\slash')), 'backslash\n');
  const long = join(dir, 'sub', 'd'.repeat(90), 'f'.repeat(120));
  mkdirSync(join(dir, 'sub', 'd'.repeat(90)));
  writeFileSync(long, 'long name\n');
}

export interface ExpectedEntry {
  type: string; // first letter of `ls -l`: - d l p h(ard link)
  target: string | null;
}

/** What `tar -tvf` should list for a tree: escaped name -> type and link target. */
export function expectedListing(root: string): Map<string, ExpectedEntry> {
  const out = new Map<string, ExpectedEntry>([['./', { type: 'd', target: null }]]);
  const seenInodes = new Map<number, string>();
  const walk = (dir: Buffer, rel: string) => {
    for (const name of readdirSync(dir, { encoding: 'buffer' }).sort(Buffer.compare)) {
      const full = Buffer.concat([dir, Buffer.from('/'), name]);
      const relName = `${rel}/${tarEscape(name)}`;
      const st = lstatSync(full);
      if (st.isDirectory()) {
        out.set(`${relName}/`, { type: 'd', target: null });
        walk(full, relName);
      } else if (st.isSymbolicLink()) out.set(relName, { type: 'l', target: tarEscape(readlinkSync(full, { encoding: 'buffer' })) });
      else if (st.isFIFO()) out.set(relName, { type: 'p', target: null });
      else if (st.isFile() && st.nlink > 1 && seenInodes.has(st.ino)) out.set(relName, { type: 'h', target: seenInodes.get(st.ino)! });
      else {
        if (st.nlink > 1) seenInodes.set(st.ino, relName);
        out.set(relName, { type: '-', target: null });
      }
    }
  };
  walk(Buffer.from(root), '.');
  return out;
}

/** Parses `tar -tvf --quoting-style=escape` output (no name in our trees contains " -> " or " link to "). */
export function parseListing(text: string): Map<string, ExpectedEntry> {
  const out = new Map<string, ExpectedEntry>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const m = /^(\S)\S+ \S+\s+[\d,]+ \d{4}-\d\d-\d\d \d\d:\d\d (.*)$/.exec(line);
    if (!m) throw new Error(`unexpected tar listing line: ${line}`);
    const type = m[1]!;
    let rest = m[2]!;
    let target: string | null = null;
    const sym = rest.indexOf(' -> ');
    const hard = rest.indexOf(' link to ');
    if (type === 'l' && sym !== -1) {
      target = rest.slice(sym + 4);
      rest = rest.slice(0, sym);
    } else if (type === 'h' && hard !== -1) {
      target = rest.slice(hard + 9);
      rest = rest.slice(0, hard);
    }
    out.set(rest, { type, target });
  }
  return out;
}

/** A few large files of real (non-sparse) data so a build takes long enough to watch. */
export function writeBigSnapshot(dir: string, files: number, bytesEach: number): void {
  mkdirSync(dir, { recursive: true });
  const block = randomBytes(1 << 20);
  for (let i = 0; i < files; i++) {
    const parts: Buffer[] = [];
    for (let left = bytesEach; left > 0; left -= block.length) parts.push(left >= block.length ? block : block.subarray(0, left));
    writeFileSync(join(dir, `big-${i}.bin`), Buffer.concat(parts));
  }
}

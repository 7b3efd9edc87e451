// A scratch copy of Archway to run `npm start` and `archway serve` in first-look mode, and what the tests look at from outside.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, lstatSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PROJECT_ROOT } from '../../src/paths.js';

/** What `npm start` needs from a fresh clone; node_modules is linked, as `npm ci` would have filled it. */
const CLONE_ENTRIES = ['package.json', 'package-lock.json', 'tsconfig.json', 'src', 'migrations', 'views', 'public', 'nginx', 'scripts'];

export function scratchClone(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'archway-first-look-'));
  for (const entry of CLONE_ENTRIES) cpSync(path.join(PROJECT_ROOT, entry), path.join(dir, entry), { recursive: true });
  symlinkSync(path.join(PROJECT_ROOT, 'node_modules'), path.join(dir, 'node_modules'));
  return dir;
}

export function removeScratch(dir: string): void {
  if (!process.env.ARCHWAY_KEEP_TEST_DIRS) rmSync(dir, { recursive: true, force: true });
}

export interface FirstLookServer {
  child: ChildProcess;
  url: string;
  output(): string;
  /** Sends the signal (to the whole process group for `npm start`, as a terminal's Ctrl-C does) and waits for the exit. */
  stop(signal: NodeJS.Signals): Promise<number | null>;
}

/** Starts `npm start` (true) or `node dist/src/main.js serve` in `cwd`, and waits for its "listening" line. */
export function startFirstLook(options: {
  cwd: string;
  npm: boolean;
  env: Record<string, string>;
  timeoutMs?: number;
}): Promise<FirstLookServer> {
  const command = options.npm ? 'npm' : process.execPath;
  const args = options.npm ? ['start', '--silent'] : [path.join(options.cwd, 'dist/src/main.js'), 'serve'];
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...options.env },
    detached: options.npm,
  });
  let output = '';
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const server: Omit<FirstLookServer, 'url'> = {
    child,
    output: () => output,
    stop(signal) {
      if (child.exitCode === null && child.signalCode === null) {
        if (options.npm) process.kill(-child.pid!, signal);
        else child.kill(signal);
      }
      return exited;
    },
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      void server.stop('SIGKILL');
      reject(new Error(`first look did not start in time:\n${output}`));
    }, options.timeoutMs ?? 240_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const match = /Archway is listening on (http:\/\/[^"\s]+)/.exec(output);
      if (match?.[1]) {
        clearTimeout(timer);
        resolve({ ...server, url: match[1] });
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`first look exited with ${code} before listening:\n${output}`));
    });
  });
}

/** Every process (but this one) whose command line or environment mentions `text`, from /proc. */
export function processesMentioning(text: string): { pid: number; cmdline: string }[] {
  const found: { pid: number; cmdline: string }[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${name}/cmdline`, 'utf8').replaceAll('\0', ' ');
      const environ = readFileSync(`/proc/${name}/environ`, 'utf8');
      if (cmdline.includes(text) || environ.includes(text)) found.push({ pid: Number(name), cmdline });
    } catch {
      // ended meanwhile
    }
  }
  return found;
}

/** Path, type, size and content hash of everything under `root`, sorted: equal digests mean the same tree and bytes. */
export function treeDigest(root: string): string {
  const lines: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const full = path.join(dir, name);
      const rel = path.relative(root, full);
      const st = lstatSync(full);
      if (st.isDirectory()) {
        lines.push(`d ${rel}`);
        walk(full);
      } else if (st.isSymbolicLink()) lines.push(`l ${rel} -> ${readlinkSync(full)}`);
      else lines.push(`f ${rel} ${st.size} ${createHash('sha256').update(readFileSync(full)).digest('hex')}`);
    }
  };
  walk(root);
  return createHash('sha256').update(lines.join('\n')).digest('hex');
}

/** Every file under `dir` (recursively) except those under `skip`. */
export function filesUnder(dir: string, skip: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const full = path.join(d, name);
      if (full === skip) continue;
      const st = lstatSync(full);
      if (st.isDirectory()) walk(full);
      else if (st.isFile()) out.push(full);
    }
  };
  walk(dir);
  return out;
}

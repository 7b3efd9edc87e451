// Test world for the dispatcher: temp roots, a config, and a runner for the BUILT bundle as a child process.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';

export const BUNDLE = join(import.meta.dirname, '..', '..', 'dist', 'dispatcher', 'archway-dispatcher.mjs');
/** The same program built with its test seams (a shifted clock, a pretended free space); never shipped. */
export const TEST_BUNDLE = join(import.meta.dirname, '..', '..', 'dist', 'dispatcher', 'archway-dispatcher.test-seams.mjs');
export const SEAM_VARIABLES = ['ARCHWAY_DISPATCHER_NOW_OFFSET', 'ARCHWAY_DISPATCHER_FAKE_FREE_BYTES'] as const;

// A call that sets a seam runs the test bundle; every other call runs the bundle that is shipped.
const bundleFor = (env: Record<string, string>) => (SEAM_VARIABLES.some((k) => k in env) ? TEST_BUNDLE : BUNDLE);
export const SECRET = 'test-secure-link-secret-0123456789';

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  answer: any;
}

export interface World {
  dir: string;
  backupRoot: string;
  archiveRoot: string;
  linkRoot: string;
  stateDir: string;
  downloadLog: string;
  configPath: string;
  config: Record<string, unknown>;
  run(argv: string | string[], stdin?: string | Buffer | object, env?: Record<string, string>): RunResult;
  /** Like run, with the bundle named rather than chosen by the environment. */
  runBundle(bundle: string, argv: string | string[], stdin?: string | Buffer | object, env?: Record<string, string>): RunResult;
  start(argv: string[], env?: Record<string, string>): ChildProcess;
}

const worldDirs: string[] = [];

// Every world of a test file goes when the file is done (set ARCHWAY_KEEP_TEST_DIRS=1 to look at them).
afterAll(() => {
  if (process.env.ARCHWAY_KEEP_TEST_DIRS) return;
  for (const dir of worldDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

export function makeWorld(overrides: Record<string, unknown> = {}): World {
  for (const b of [BUNDLE, TEST_BUNDLE]) if (!existsSync(b)) throw new Error(`build the dispatcher first (npm run build): ${b} is missing`);
  const dir = mkdtempSync(join(tmpdir(), 'archway-dispatcher-'));
  worldDirs.push(dir);
  const w = {
    dir,
    backupRoot: join(dir, 'backup'),
    archiveRoot: join(dir, 'archive'),
    linkRoot: join(dir, 'link'),
    stateDir: join(dir, 'state'),
    downloadLog: join(dir, 'nginx', 'download.log'),
    configPath: join(dir, 'dispatcher.json'),
  };
  for (const d of [w.backupRoot, w.archiveRoot, w.linkRoot, join(dir, 'nginx')]) mkdirSync(d, { recursive: true, mode: 0o755 });
  chmodSync(w.linkRoot, 0o710);
  const secretFile = join(dir, 'secure-link.secret');
  writeFileSync(secretFile, `${SECRET}\n`, { mode: 0o600 });
  const config = {
    backupRoot: w.backupRoot,
    archiveRoot: w.archiveRoot,
    linkRoot: w.linkRoot,
    stateDir: w.stateDir,
    secureLinkSecretFile: secretFile,
    downloadBaseUrl: 'https://dl.example.net',
    downloadLog: w.downloadLog,
    linkTtlSeconds: 60,
    linkGraceSeconds: 300,
    archiveRetentionDays: 7,
    nginxGroup: 'root',
    progressIntervalMs: 10,
    watchPollMs: 20,
    // The host's limits are tested on their own (limits.test.ts); elsewhere tests build freely.
    maxReadyArchivesPerCustomer: 1000,
    archiveCreatePerCustomerPerDay: 100_000,
    archiveCreatePerHour: 100_000,
    linkIssuePerCustomerPerHour: 100_000,
    linkIssuePerHour: 1_000_000,
    ...overrides,
  };
  writeFileSync(w.configPath, JSON.stringify(config), { mode: 0o600 });
  chmodSync(w.configPath, 0o600);
  const baseEnv = (extra: Record<string, string> = {}) => ({
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    ARCHWAY_DISPATCHER_CONFIG: w.configPath,
    ...extra,
  });
  const runBundle: World['runBundle'] = (bundle, argv, stdin = {}, env = {}) => {
    const args = typeof argv === 'string' ? [argv] : argv;
    const input = typeof stdin === 'string' || Buffer.isBuffer(stdin) ? stdin : JSON.stringify(stdin);
    const r = spawnSync(process.execPath, [bundle, ...args], { input, env: baseEnv(env), encoding: 'utf8', timeout: 20_000 });
    let answer: any;
    try {
      answer = JSON.parse(r.stdout);
    } catch {
      answer = null;
    }
    return { code: r.status, stdout: r.stdout, stderr: r.stderr, answer };
  };
  return {
    ...w,
    config,
    run: (argv, stdin = {}, env = {}) => runBundle(bundleFor(env), argv, stdin, env),
    runBundle,
    start(argv, env = {}) {
      return spawn(process.execPath, [bundleFor(env), ...argv], { env: baseEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
    },
  };
}

/** A copy of the bundle as the installer leaves it: root-only, its #! line naming node by absolute path. */
export function installDispatcher(w: World): string {
  const installed = join(w.dir, 'archway-dispatcher');
  const text = readFileSync(BUNDLE, 'utf8');
  writeFileSync(installed, `#!${process.execPath}${text.slice(text.indexOf('\n'))}`, { mode: 0o700 });
  chmodSync(installed, 0o700);
  return installed;
}

export interface ManifestEntry {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  size: bigint;
  mtimeNs: bigint;
  content: string | null;
}

/** Everything about a tree that an action could change: type, mode, owner, size, mtime (ns), content hash, link target. */
export function manifest(root: string): Map<string, ManifestEntry> {
  const out = new Map<string, ManifestEntry>();
  const walk = (dir: Buffer, rel: string) => {
    for (const name of readdirSync(dir, { encoding: 'buffer' })) {
      const full = Buffer.concat([dir, Buffer.from('/'), name]);
      const key = `${rel}/${name.toString('hex')}`;
      const st = lstatSync(full, { bigint: true });
      let type = 'other';
      let content: string | null = null;
      if (st.isSymbolicLink()) {
        type = 'symlink';
        content = readlinkSync(full, { encoding: 'buffer' }).toString('hex');
      } else if (st.isDirectory()) type = 'dir';
      else if (st.isFile()) {
        type = 'file';
        content = createHash('sha256').update(readFileSync(full)).digest('hex');
      } else if (st.isFIFO()) type = 'fifo';
      out.set(key, { type, mode: Number(st.mode), uid: Number(st.uid), gid: Number(st.gid), size: st.size, mtimeNs: st.mtimeNs, content });
      if (type === 'dir') walk(full, key);
    }
  };
  const rootSt = lstatSync(root, { bigint: true });
  out.set('.', {
    type: 'dir',
    mode: Number(rootSt.mode),
    uid: Number(rootSt.uid),
    gid: Number(rootSt.gid),
    size: 0n,
    mtimeNs: rootSt.mtimeNs,
    content: null,
  });
  walk(Buffer.from(root), '.');
  return out;
}

export async function waitFor<T>(what: string, fn: () => T | null | undefined | false, timeoutMs = 15_000, everyMs = 25): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export const sha256File = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');
export const tokenHash = (token: string) => createHash('sha256').update(token).digest('hex');

// Starts a private sshd on loopback with the shipped gate, sudoers rule and sshd snippet, for tests and benches.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { accessSync, constants as fsConstants, readFileSync, rmSync } from 'node:fs';
import { chmod, chown, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (this file lives in test/harness/, or in a bundle two levels down). */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a program with an argument array (never a shell) and collects its output. */
export function run(cmd: string, args: readonly string[], options: { input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env: options.env ?? process.env });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
    child.stdin.on('error', () => undefined);
    child.stdin.end(options.input ?? '');
  });
}

/** Like run, but a non-zero exit is an error that shows what the program said. */
export async function runOk(cmd: string, args: readonly string[], options: { input?: string } = {}): Promise<RunResult> {
  const r = await run(cmd, args, options);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code ?? r.signal}: ${r.stderr.trim()}`);
  return r;
}

/** Finds a program on PATH or in the sbin directories a non-login root shell may lack. */
export function findProgram(name: string): string {
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/local/sbin', '/usr/sbin', '/sbin', '/usr/bin', '/bin'];
  for (const dir of dirs) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, fsConstants.X_OK);
      return candidate;
    } catch {
      // not here; keep looking
    }
  }
  throw new Error(
    `${name} is not installed (looked on PATH and in the sbin directories). Install what the tests need with: scripts/install-test-deps.sh`,
  );
}

/** A free TCP port on a loopback address (the tests never listen anywhere else). */
export function freeLoopbackPort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

// Cleanups that must happen even if the test process dies between setup and afterAll: a test
// user, a sudoers rule or a root sshd left behind would outlive the test run.
const exitCleanups = new Set<() => void>();
function runExitCleanups(): void {
  for (const fn of [...exitCleanups].reverse()) {
    try {
      fn();
    } catch {
      // best effort while exiting
    }
  }
}
process.once('exit', runExitCleanups);
// Node skips 'exit' handlers when a signal ends the process (Ctrl-C, a killed test run): clean up,
// then die of the same signal so whoever sent it sees the usual outcome.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(signal, () => {
    runExitCleanups();
    process.kill(process.pid, signal);
  });
}

/** Registers a synchronous cleanup for process exit; returns a function that runs it once now. */
export function cleanupOnExit(fn: () => void): () => void {
  let done = false;
  const once = (): void => {
    if (done) return;
    done = true;
    exitCleanups.delete(once);
    fn();
  };
  exitCleanups.add(once);
  return once;
}

// Paths end up unquoted in sudoers and in the gate's exec line, so only plain characters pass.
const SAFE_PATH = /^\/[A-Za-z0-9/._-]+$/;

export function assertSafePath(path: string): string {
  if (!SAFE_PATH.test(path) || path.includes('/../')) throw new Error(`unsafe path for sudoers/gate: ${path}`);
  return path;
}

/** Fills @@NAME@@ placeholders in a shipped template; a placeholder left over is an error. */
export function renderTemplate(text: string, values: Readonly<Record<string, string>>): string {
  const out = text.replace(/@@([A-Z_]+)@@/g, (whole, key: string) => {
    const value = values[key];
    if (value === undefined) throw new Error(`template placeholder ${whole} has no value`);
    return value;
  });
  return out;
}

export function readShipped(relativePath: string): string {
  return readFileSync(join(REPO_ROOT, relativePath), 'utf8');
}

export interface TestUser {
  name: string;
  home: string;
  remove(): Promise<void>;
}

/** Creates a throwaway system user with shell /bin/sh, like the install script's dedicated user. */
export async function createTestUser(prefix = 'awt'): Promise<TestUser> {
  const name = `${prefix}${randomBytes(5).toString('hex')}`;
  await runOk(findProgram('useradd'), ['--create-home', '--shell', '/bin/sh', '--comment', 'archway test user', name]);
  // useradd leaves the password field as "!" (locked), and sshd refuses locked accounts even for
  // keys when PAM is off; "*" means "no password can match" without locking the account.
  await runOk(findProgram('usermod'), ['--password', '*', name]);
  const home = (await runOk(findProgram('getent'), ['passwd', name])).stdout.split(':')[5] ?? '';
  const removeNow = cleanupOnExit(() => {
    spawnSync(findProgram('userdel'), ['--force', '--remove', name], { stdio: 'ignore' });
  });
  return { name, home, remove: async () => removeNow() };
}

/** Writes authorized_keys root-owned (the user can read it, never change its forced command). */
export async function writeAuthorizedKeys(user: TestUser, lines: readonly string[]): Promise<void> {
  const dir = join(user.home, '.ssh');
  await mkdir(dir, { recursive: true, mode: 0o755 });
  await chown(dir, 0, 0);
  await chmod(dir, 0o755);
  const file = join(dir, 'authorized_keys');
  await writeFile(file, lines.map((l) => `${l}\n`).join(''), { mode: 0o644 });
  await chown(file, 0, 0);
  await chmod(file, 0o644);
}

/** The shipped authorized_keys line: restricted, bound to the portal's address, forced to the gate. */
export function authorizedKeyLine(portalAddress: string, gatePath: string, publicKey: string): string {
  const line = renderTemplate(readShipped('deploy/authorized_keys.in'), {
    PORTAL_ADDRESS: portalAddress,
    GATE: assertSafePath(gatePath),
    PUBLIC_KEY: publicKey.trim().split(/\s+/).slice(0, 2).join(' '),
  });
  return line.trim();
}

/** Installs the shipped gate, root-owned 0755, pointing at the given dispatcher. */
export async function installGate(dir: string, dispatcherPath: string): Promise<string> {
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const gate = join(dir, 'archway-gate');
  await writeFile(gate, renderTemplate(readShipped('deploy/archway-gate'), { DISPATCHER: assertSafePath(dispatcherPath) }), {
    mode: 0o755,
  });
  await chown(gate, 0, 0);
  await chmod(gate, 0o755);
  return gate;
}

export interface SudoersRule {
  path: string;
  text: string;
  remove(): Promise<void>;
}

/** Installs the shipped sudoers rule under a unique name in /etc/sudoers.d, validated by visudo first. */
export async function installSudoersRule(dir: string, user: string, dispatcherPath: string): Promise<SudoersRule> {
  const text = renderTemplate(readShipped('deploy/archway.sudoers.in'), { USER: user, DISPATCHER: assertSafePath(dispatcherPath) });
  const candidate = join(dir, 'sudoers.candidate');
  await writeFile(candidate, text, { mode: 0o440 });
  await runOk(findProgram('visudo'), ['-c', '-q', '-f', candidate]);
  // sudo ignores files in sudoers.d whose name contains a dot, so the unique suffix is hex only.
  const path = join('/etc/sudoers.d', `archway-test-${randomBytes(6).toString('hex')}`);
  const removeNow = cleanupOnExit(() => rmSync(path, { force: true }));
  // Written beside (a name with a dot, which sudo skips) and renamed, so a concurrent visudo -c in
  // another test file never reads half a file.
  await writeFile(`${path}.tmp`, text, { mode: 0o440 });
  await chmod(`${path}.tmp`, 0o440);
  await rename(`${path}.tmp`, path);
  // The whole sudoers configuration must still parse, or we would break sudo for everyone.
  const whole = await run(findProgram('visudo'), ['-c', '-q']);
  if (whole.code !== 0) {
    removeNow();
    throw new Error(`sudoers no longer parses with the test rule: ${whole.stderr.trim()}`);
  }
  return { path, text, remove: async () => removeNow() };
}

export interface KeyPair {
  privateKeyPath: string;
  publicKey: string;
  fingerprint: string;
}

/** Generates an ed25519 key pair (optionally encrypted with a passphrase) in dir. */
export async function generateKeyPair(dir: string, name: string, passphrase = ''): Promise<KeyPair> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const privateKeyPath = join(dir, name);
  await rm(privateKeyPath, { force: true });
  await rm(`${privateKeyPath}.pub`, { force: true });
  await runOk(findProgram('ssh-keygen'), ['-q', '-t', 'ed25519', '-N', passphrase, '-C', name, '-f', privateKeyPath]);
  const publicKey = (await readFile(`${privateKeyPath}.pub`, 'utf8')).trim();
  return { privateKeyPath, publicKey, fingerprint: fingerprintOfPublicKey(publicKey) };
}

/** `SHA256:<base64 without padding>` of an OpenSSH public key line, as `ssh-keygen -l` prints it. */
export function fingerprintOfPublicKey(line: string): string {
  const blob = line.trim().split(/\s+/)[1];
  if (!blob) throw new Error('not an OpenSSH public key line');
  return `SHA256:${createHash('sha256').update(Buffer.from(blob, 'base64')).digest('base64').replace(/=+$/, '')}`;
}

export interface PrivateSshd {
  host: string;
  port: number;
  hostKeyFingerprint: string;
  hostPublicKey: string;
  /** What sshd logged so far (useful in assertion messages). */
  log(): string;
  stop(): Promise<void>;
}

export interface SshdOptions {
  /** A private directory for the config, host key and pid file. */
  dir: string;
  user: string;
  gatePath: string;
  host?: string;
}

/** Starts sshd in the foreground with its own config and host key; only the test user may log in. */
export async function startSshd(options: SshdOptions): Promise<PrivateSshd> {
  const host = options.host ?? '127.0.0.1';
  if (!host.startsWith('127.')) throw new Error('the private sshd listens on loopback only');
  await mkdir(options.dir, { recursive: true, mode: 0o700 });
  // sshd's privilege separation needs this directory; a fresh container may not have it.
  await mkdir('/run/sshd', { recursive: true, mode: 0o755 });
  const hostKey = join(options.dir, 'ssh_host_ed25519_key');
  await rm(hostKey, { force: true });
  await rm(`${hostKey}.pub`, { force: true });
  await runOk(findProgram('ssh-keygen'), ['-q', '-t', 'ed25519', '-N', '', '-C', 'archway-test-host', '-f', hostKey]);
  const hostPublicKey = (await readFile(`${hostKey}.pub`, 'utf8')).trim();
  const port = await freeLoopbackPort(host);
  const snippet = renderTemplate(readShipped('deploy/sshd-archway.conf.in'), {
    USER: options.user,
    GATE: assertSafePath(options.gatePath),
  });
  const config = [
    `ListenAddress ${host}:${port}`,
    `HostKey ${hostKey}`,
    `PidFile ${join(options.dir, 'sshd.pid')}`,
    'AuthorizedKeysFile .ssh/authorized_keys',
    'StrictModes yes',
    'PubkeyAuthentication yes',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'PermitRootLogin no',
    'PermitUserEnvironment no',
    'UsePAM no',
    `AllowUsers ${options.user}`,
    'MaxStartups 100:30:200',
    'LogLevel VERBOSE',
    snippet,
  ].join('\n');
  const configPath = join(options.dir, 'sshd_config');
  await writeFile(configPath, `${config}\n`, { mode: 0o600 });
  await runOk(findProgram('sshd'), ['-t', '-f', configPath]);

  const child: ChildProcess = spawn(findProgram('sshd'), ['-D', '-e', '-f', configPath], { stdio: ['ignore', 'ignore', 'pipe'] });
  const killNow = cleanupOnExit(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  });
  let log = '';
  child.stderr?.setEncoding('utf8');
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`sshd did not start: ${log}`)), 30_000);
    child.stderr?.on('data', (d: string) => {
      log += d;
      if (log.includes(`Server listening on ${host} port ${port}`)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`sshd exited (${code}) before listening: ${log}`));
    });
  });
  return {
    host,
    port,
    hostKeyFingerprint: fingerprintOfPublicKey(hostPublicKey),
    hostPublicKey,
    log: () => log,
    stop: () => stopProcess(child, killNow),
  };
}

/** Kills a private server and waits until it has exited, so its port and files are free afterwards. */
export async function stopProcess(child: ChildProcess, killNow: () => void): Promise<void> {
  const running = child.exitCode === null && child.signalCode === null;
  const exited = running ? new Promise((resolve) => child.once('exit', resolve)) : Promise.resolve();
  killNow();
  await exited;
}

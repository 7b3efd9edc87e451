// A whole backup host on loopback for tests and benches: user, gate, sudoers, dispatcher, sshd, nginx, watch.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { chmod, chown, copyFile, mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SshBackupHostSettings } from '../../src/backup-host/index.js';
import { startNginx, type PrivateNginx } from '../harness/nginx.js';
import {
  authorizedKeyLine,
  cleanupOnExit,
  createTestUser,
  findProgram,
  generateKeyPair,
  installGate,
  installSudoersRule,
  REPO_ROOT,
  run,
  startSshd,
  writeAuthorizedKeys,
  type KeyPair,
  type PrivateSshd,
  type RunResult,
  type SudoersRule,
  type TestUser,
} from '../harness/sshd.js';
export { eventually } from '../harness/eventually.js';

/** The built dispatcher (`npm run build`); tests always run the real program. */
export const DISPATCHER_BUNDLE = join(REPO_ROOT, 'dist', 'dispatcher', 'archway-dispatcher.mjs');

export const ENCRYPTED_KEY_PASSPHRASE = 'a passphrase for the test key';

export interface BackupHostFixtureOptions {
  linkTtlSeconds?: number;
  linkGraceSeconds?: number;
  withNginx?: boolean;
  /** Extra server-level nginx directives (the download bench adds a plain static location). */
  extraNginxConfig?: (paths: { base: string }) => string;
  /** Address the portal key is bound to with from= (the tests connect from 127.0.0.1). */
  portalAddress?: string;
  /** Further dispatcher settings (e.g. faster progress and watch polling in tests). */
  dispatcherSettings?: Record<string, unknown>;
  /** The loopback address its sshd and nginx listen on (a fleet test gives each host its own). */
  listenAddress?: string;
}

export interface BackupHostFixture {
  base: string;
  user: TestUser;
  gatePath: string;
  dispatcherPath: string;
  dispatcherConfigPath: string;
  sudoers: SudoersRule;
  sshd: PrivateSshd;
  nginx: PrivateNginx | null;
  /** Authorized with from="127.0.0.1" (or portalAddress): the portal's key. */
  portalKey: KeyPair;
  /** The portal's client settings for this host: its sshd, the test user, the portal key, the pinned host key. */
  portalSettings: SshBackupHostSettings;
  /** Authorized only from="127.0.0.9": proves the from= binding. */
  elsewhereKey: KeyPair;
  /** A passphrase-protected portal key (passphrase: ENCRYPTED_KEY_PASSPHRASE), same binding as portalKey. */
  encryptedPortalKey: KeyPair;
  backupRoot: string;
  archiveRoot: string;
  linkRoot: string;
  stateDir: string;
  downloadLog: string;
  secret: string;
  downloadBaseUrl: string;
  /** Runs a local-only action (sweep, check) as root, the way cron/systemd do. */
  runLocal(action: string): Promise<RunResult>;
  /** Starts `dispatcher watch` following nginx's download log, like the systemd unit. */
  startWatch(): Promise<WatchProcess>;
  stop(): Promise<void>;
}

export interface WatchProcess {
  child: ChildProcess;
  output(): string;
  stop(): Promise<void>;
}

async function dirFor(path: string, mode: number, group?: number): Promise<string> {
  await mkdir(path, { recursive: true, mode });
  await chown(path, 0, group ?? 0);
  await chmod(path, mode);
  return path;
}

/** Builds the whole backup host in a fresh temp directory; stop() removes every trace. */
export async function startBackupHost(options: BackupHostFixtureOptions = {}): Promise<BackupHostFixture> {
  if (!existsSync(DISPATCHER_BUNDLE)) throw new Error('the dispatcher is not built: run `npm run build` first');
  if (process.getuid?.() !== 0) {
    throw new Error(
      'The backup-host tests need root: they create a test user, a sudoers rule and private sshd and nginx servers. Run the suite as root.',
    );
  }
  const undo: Array<() => Promise<void>> = [];
  const stop = async (): Promise<void> => {
    for (const fn of undo.splice(0).reverse()) {
      try {
        await fn();
      } catch {
        // keep undoing the rest
      }
    }
  };
  try {
    const groupLine = await run(findProgram('getent'), ['group', 'www-data']);
    const wwwDataGid = Number(groupLine.stdout.split(':')[2]);
    if (groupLine.code !== 0 || !Number.isInteger(wwwDataGid)) throw new Error('group www-data does not exist');

    // The base is traversable (0755) so the SSH user reaches the gate and nginx reaches its files;
    // everything secret below it is in root-only directories.
    const base = await mkdtemp(join(tmpdir(), 'archway-bh-'));
    const removeBase = cleanupOnExit(() => rmSync(base, { recursive: true, force: true }));
    undo.push(async () => removeBase());
    await chmod(base, 0o755);

    const dispatcherDir = await dirFor(join(base, 'dispatcher'), 0o700);
    const stateDir = await dirFor(join(base, 'state'), 0o700);
    const backupRoot = await dirFor(join(base, 'backups'), 0o700);
    const archiveRoot = await dirFor(join(base, 'archives'), 0o750, wwwDataGid);
    const linkRoot = await dirFor(join(base, 'links'), 0o750, wwwDataGid);
    const nginxDir = await dirFor(join(base, 'nginx'), 0o755);
    const downloadLog = join(nginxDir, 'logs', 'download.log');

    const dispatcherPath = join(dispatcherDir, 'archway-dispatcher.mjs');
    await copyFile(DISPATCHER_BUNDLE, dispatcherPath);
    await chmod(dispatcherPath, 0o700);
    const secret = randomBytes(32).toString('base64url');
    const secretFile = join(dispatcherDir, 'secure-link.secret');
    await writeFile(secretFile, `${secret}\n`, { mode: 0o600 });

    const user = await createTestUser();
    undo.push(() => user.remove());
    const gatePath = await installGate(await dirFor(join(base, 'gate'), 0o755), dispatcherPath);
    const sudoers = await installSudoersRule(dispatcherDir, user.name, dispatcherPath);
    undo.push(() => sudoers.remove());

    const keysDir = await dirFor(join(base, 'keys'), 0o700);
    const portalKey = await generateKeyPair(keysDir, 'portal_ed25519');
    const elsewhereKey = await generateKeyPair(keysDir, 'elsewhere_ed25519');
    const encryptedPortalKey = await generateKeyPair(keysDir, 'encrypted_ed25519', ENCRYPTED_KEY_PASSPHRASE);
    await writeAuthorizedKeys(user, [
      authorizedKeyLine(options.portalAddress ?? '127.0.0.1', gatePath, portalKey.publicKey),
      authorizedKeyLine('127.0.0.9', gatePath, elsewhereKey.publicKey),
      authorizedKeyLine(options.portalAddress ?? '127.0.0.1', gatePath, encryptedPortalKey.publicKey),
    ]);

    let nginx: PrivateNginx | null = null;
    let downloadBaseUrl = 'http://127.0.0.1:9';
    if (options.withNginx !== false) {
      nginx = await startNginx({
        dir: nginxDir,
        linkRoot,
        secret,
        downloadLog,
        host: options.listenAddress,
        extraServerConfig: options.extraNginxConfig?.({ base }),
      });
      undo.push(() => nginx!.stop());
      downloadBaseUrl = nginx.baseUrl;
    }

    const dispatcherConfigPath = join(dispatcherDir, 'dispatcher.json');
    const config = {
      backupRoot,
      archiveRoot,
      linkRoot,
      stateDir,
      secureLinkSecretFile: secretFile,
      downloadBaseUrl,
      linkTtlSeconds: options.linkTtlSeconds ?? 60,
      linkGraceSeconds: options.linkGraceSeconds ?? 300,
      archiveRetentionDays: 7,
      downloadLog,
      maxRequestBytes: 65536,
      nginxGroup: 'www-data',
      ...options.dispatcherSettings,
    };
    await writeFile(dispatcherConfigPath, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });

    const sshd = await startSshd({ dir: await dirFor(join(base, 'sshd'), 0o700), user: user.name, gatePath, host: options.listenAddress });
    undo.push(() => sshd.stop());

    const localEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', ARCHWAY_DISPATCHER_CONFIG: dispatcherConfigPath };
    const watches: WatchProcess[] = [];
    undo.push(async () => {
      for (const w of watches) await w.stop();
    });

    return {
      base,
      user,
      gatePath,
      dispatcherPath,
      dispatcherConfigPath,
      sudoers,
      sshd,
      nginx,
      portalKey,
      portalSettings: {
        host: sshd.host,
        port: sshd.port,
        user: user.name,
        privateKeyPath: portalKey.privateKeyPath,
        hostKeyFingerprint: sshd.hostKeyFingerprint,
      },
      elsewhereKey,
      encryptedPortalKey,
      backupRoot,
      archiveRoot,
      linkRoot,
      stateDir,
      downloadLog,
      secret,
      downloadBaseUrl,
      runLocal: (action) => run(process.execPath, [dispatcherPath, action], { env: localEnv }),
      startWatch: async () => {
        const child = spawn(process.execPath, [dispatcherPath, 'watch'], { env: localEnv, stdio: ['ignore', 'pipe', 'pipe'] });
        let output = '';
        child.stdout.setEncoding('utf8').on('data', (d: string) => (output += d));
        child.stderr.setEncoding('utf8').on('data', (d: string) => (output += d));
        const killNow = cleanupOnExit(() => {
          if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
        });
        const handle: WatchProcess = {
          child,
          output: () => output,
          stop: async () => {
            if (child.exitCode === null && child.signalCode === null) {
              const exited = new Promise((r) => child.once('exit', r));
              killNow();
              await exited;
            }
          },
        };
        watches.push(handle);
        return handle;
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

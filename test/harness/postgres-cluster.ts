// Starts a throwaway PostgreSQL cluster from the machine's server binaries, on loopback and a private socket.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';

export const INSTALL_HINT = 'scripts/install-test-deps.sh   (or set ARCHWAY_TEST_DATABASE_URL to a server you may create databases on)';

export class MissingSystemPackage extends Error {
  constructor(what: string, install: string) {
    super(`The test suite needs ${what}, which is not installed.\nInstall it with:\n  ${install}`);
    this.name = 'MissingSystemPackage';
  }
}

/** Debian keeps the server binaries out of PATH, under /usr/lib/postgresql/<major>/bin. */
export function findPostgresBinDir(): string {
  const candidates: string[] = [];
  try {
    candidates.push(execFileSync('pg_config', ['--bindir'], { encoding: 'utf8' }).trim());
  } catch {
    // pg_config is optional; the Debian layout below is searched too.
  }
  const debian = '/usr/lib/postgresql';
  if (existsSync(debian)) {
    for (const major of readdirSync(debian).sort((a, b) => Number(b) - Number(a))) candidates.push(path.join(debian, major, 'bin'));
  }
  const found = candidates.find((dir) => existsSync(path.join(dir, 'initdb')) && existsSync(path.join(dir, 'postgres')));
  if (found === undefined) throw new MissingSystemPackage('the PostgreSQL server (initdb and postgres)', INSTALL_HINT);
  return found;
}

export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

export interface RunningCluster {
  adminUrl: string;
  stop(): Promise<void>;
}

function postgresUser(): { uid: number; gid: number } | null {
  if (process.getuid?.() !== 0) return null;
  // initdb refuses to run as root, so as root the cluster belongs to the postgres system user.
  try {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    return { uid, gid };
  } catch {
    throw new MissingSystemPackage('a "postgres" system user to own the test cluster (tests run as root)', INSTALL_HINT);
  }
}

export async function startCluster(): Promise<RunningCluster> {
  const bin = findPostgresBinDir();
  const owner = postgresUser();
  const root = mkdtempSync(path.join(tmpdir(), 'archway-pg-'));
  const dataDir = path.join(root, 'data');
  const socketDir = path.join(root, 'socket');
  chmodSync(root, 0o755);
  if (owner) chownSync(root, owner.uid, owner.gid);
  const asOwner = { ...(owner ? { uid: owner.uid, gid: owner.gid } : {}), env: { ...process.env, LC_ALL: 'C.UTF-8' } };

  execFileSync(path.join(bin, 'initdb'), ['-D', dataDir, '-U', 'postgres', '-A', 'trust', '--no-sync', '-E', 'UTF8', '--no-instructions'], {
    ...asOwner,
    stdio: 'pipe',
  });
  execFileSync('mkdir', ['-p', socketDir], asOwner);

  const port = await freePort();
  // Durability settings are off: a throwaway cluster trades crash safety for speed.
  const server: ChildProcess = spawn(
    path.join(bin, 'postgres'),
    [
      '-D',
      dataDir,
      '-p',
      String(port),
      '-k',
      socketDir,
      '-c',
      'listen_addresses=127.0.0.1',
      '-c',
      'fsync=off',
      '-c',
      'synchronous_commit=off',
      '-c',
      'full_page_writes=off',
      '-c',
      'max_connections=300',
      '-c',
      'shared_buffers=128MB',
    ],
    { ...asOwner, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  server.stderr?.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
  const exited = new Promise<void>((resolve) => server.once('exit', () => resolve()));

  const adminUrl = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    const client = new pg.Client({ connectionString: adminUrl });
    try {
      await client.connect();
      await client.end();
      break;
    } catch (error) {
      await client.end().catch(() => undefined);
      if (server.exitCode !== null || Date.now() > deadline) {
        server.kill('SIGKILL');
        rmSync(root, { recursive: true, force: true });
        throw new Error(`The test PostgreSQL server did not start: ${(error as Error).message}\n${stderr}`, { cause: error });
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  const killOnExit = () => server.kill('SIGKILL');
  process.once('exit', killOnExit);
  return {
    adminUrl,
    async stop() {
      process.off('exit', killOnExit);
      if (server.exitCode === null) {
        server.kill('SIGINT'); // fast shutdown: disconnect clients, no checkpoint wait
        const timer = setTimeout(() => server.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(root, { recursive: true, force: true });
    },
  };
}

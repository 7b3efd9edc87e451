// Runs first look's dispatcher `watch` and `sweep` beside the portal, and ends every dispatcher process it owns on stop.
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import type pino from 'pino';

// As the systemd timer of a real backup host runs it.
export const SWEEP_INTERVAL_MS = 60_000;
const STOP_GRACE_MS = 5_000;
const EXIT_WITH_PARENT = new URL('./exit-with-parent.js', import.meta.url).href;

export interface DispatcherProcessesOptions {
  dispatcherPath: string;
  configPath: string;
  log: pino.Logger;
}

/** Processes that run `dispatcherPath` with `configPath` (from /proc: Linux, as the dispatcher itself). */
export function findDispatcherProcesses(dispatcherPath: string, configPath: string): { pid: number; argv: string[] }[] {
  const found: { pid: number; argv: string[] }[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const argv = readFileSync(`/proc/${name}/cmdline`, 'utf8')
        .split('\0')
        .filter((a) => a !== '');
      if (!argv.includes(dispatcherPath)) continue;
      const env = readFileSync(`/proc/${name}/environ`, 'utf8').split('\0');
      if (env.includes(`ARCHWAY_DISPATCHER_CONFIG=${configPath}`)) found.push({ pid: Number(name), argv });
    } catch {
      // gone meanwhile, or another user's
    }
  }
  return found;
}

function exited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise((resolve) => child.once('exit', () => resolve()));
}

/**
 * Starts `watch` (kept running, restarted if it dies) and `sweep` (at once, then every minute). Each runs
 * the real dispatcher bundle with a preload that ends it when the portal's end of its stdin closes.
 * The returned stop ends them, then kills any archive build still running: first look's backup host
 * stops with the portal, as a rebooted backup host would, and the dispatcher marks such builds failed.
 */
export function startDispatcherProcesses(options: DispatcherProcessesOptions): () => Promise<void> {
  const { dispatcherPath, configPath, log } = options;
  let stopping = false;
  const run = (action: 'watch' | 'sweep'): ChildProcess => {
    const child = spawn(process.execPath, ['--import', EXIT_WITH_PARENT, dispatcherPath, action], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ARCHWAY_DISPATCHER_CONFIG: configPath },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let output = '';
    const keep = (chunk: Buffer) => (output = (output + chunk.toString()).slice(-4000));
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    child.stdin!.on('error', () => undefined);
    child.on('error', (err) => log.error({ err, action }, 'first-look backup host: cannot start the dispatcher'));
    child.on('exit', (code, signal) => {
      if (code !== 0 && !stopping) log.error({ action, code, signal, output }, 'first-look backup host: dispatcher command failed');
    });
    return child;
  };

  let watch: ChildProcess | null = null;
  const startWatch = () => {
    watch = run('watch');
    watch.once('exit', () => {
      // Downloads are recorded only while watch runs; a crash must not end that silently.
      if (!stopping) setTimeout(() => !stopping && startWatch(), 1_000).unref();
    });
  };
  startWatch();

  let sweep: ChildProcess | null = null;
  const startSweep = () => {
    if (sweep !== null && sweep.exitCode === null && sweep.signalCode === null) return; // the last one is still at work
    sweep = run('sweep');
  };
  startSweep();
  const timer = setInterval(startSweep, SWEEP_INTERVAL_MS);
  timer.unref();

  return async () => {
    stopping = true;
    clearInterval(timer);
    const children = [watch, sweep].filter((c): c is ChildProcess => c !== null);
    for (const child of children) child.kill('SIGTERM');
    const killer = setTimeout(() => children.forEach((c) => c.kill('SIGKILL')), STOP_GRACE_MS);
    await Promise.all(children.map(exited));
    clearTimeout(killer);
    for (const { pid, argv } of findDispatcherProcesses(dispatcherPath, configPath)) {
      if (!argv.includes('__build')) continue;
      try {
        // A builder leads its own process group, so this ends its tar too.
        process.kill(-pid, 'SIGKILL');
        log.warn({ pid }, 'first-look backup host: stopped an archive build in progress');
      } catch {
        // finished meanwhile
      }
    }
  };
}

// Time from starting Archway in first-look mode (with its own backup host) to its first served page, against a bare Node HTTP server.
// Usage: npm run bench -- first-look-start [runs=5]
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const runs = Number(process.argv[2] ?? 5);

const BARE = `require('http').createServer((q, s) => s.end('ok')).listen(0, '127.0.0.1', function () {
  console.log('Archway is listening on http://127.0.0.1:' + this.address().port);
});`;

/** Starts a process, waits for its "listening on" line, fetches "/", and returns the elapsed ms. */
async function timeToFirstPage(args, cwd, { command = process.execPath, env = {} } = {}) {
  const started = process.hrtime.bigint();
  const child = spawn(command, args, {
    cwd,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ARCHWAY_PORT: '0', ARCHWAY_LOG_LEVEL: 'info', ...env },
    // npm start runs node as a grandchild: a process group lets SIGTERM reach it.
    detached: command !== process.execPath,
  });
  let output = '';
  try {
    const url = await new Promise((resolve, reject) => {
      const onData = (chunk) => {
        output += chunk;
        const match = /listening on (http:\/\/[\d.:]+)/.exec(output);
        if (match) resolve(match[1]);
      };
      child.stdout.on('data', onData);
      child.stderr.on('data', onData);
      child.once('exit', (code) => reject(new Error(`exited ${code}: ${output}`)));
    });
    const res = await fetch(`${url}/`);
    if (res.status !== 200) throw new Error(`first page answered ${res.status}`);
    await res.text();
    return Number(process.hrtime.bigint() - started) / 1e6;
  } finally {
    if (child.spawnargs[0] === process.execPath) child.kill('SIGTERM');
    else process.kill(-child.pid, 'SIGTERM');
    await new Promise((r) => (child.exitCode === null ? child.once('exit', r) : r()));
  }
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const main = path.join(root, 'dist/src/main.js');
const results = { bare: [], fresh: [], warm: [], npmStart: [] };
for (let i = 0; i < runs; i++) {
  const cwd = mkdtempSync(path.join(tmpdir(), 'archway-bench-'));
  try {
    results.bare.push(await timeToFirstPage(['-e', BARE], cwd));
    // Empty ./var: creates the database, secrets and the backup host with its demo backups.
    results.fresh.push(await timeToFirstPage([main, 'serve'], cwd));
    results.warm.push(await timeToFirstPage([main, 'serve'], cwd)); // ./var exists from the run before
    // What a newcomer types: builds with tsc, then serves (data kept in the same temp directory).
    results.npmStart.push(
      await timeToFirstPage(['start', '--silent'], root, { command: 'npm', env: { ARCHWAY_DATA_DIR: path.join(cwd, 'var') } }),
    );
  } finally {
    rmSync(cwd, { recursive: true, force: true });
  }
}
const base = median(results.bare);
console.log(`first-look start to first page, median of ${runs} (ms):`);
console.log(`  bare node http server (baseline)  ${base.toFixed(0)}`);
console.log(
  `  archway, empty ./var (first run)  ${median(results.fresh).toFixed(0)}  (${(median(results.fresh) / base).toFixed(1)}x baseline)`,
);
console.log(
  `  archway, existing ./var           ${median(results.warm).toFixed(0)}  (${(median(results.warm) / base).toFixed(1)}x baseline)`,
);
console.log(
  `  npm start (tsc build + serve)     ${median(results.npmStart).toFixed(0)}  (${(median(results.npmStart) / base).toFixed(1)}x baseline)`,
);

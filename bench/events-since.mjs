#!/usr/bin/env node
// Time and memory of `events.since` near the end of a long event log, against reading the whole log.
//
// Usage: npm run bench -- events-since [--events 1000000] [--runs 5]
// The portal's event sync asks every 20 s for what is new; the log keeps every event ever written.
// Baselines in the same run: a bare `node -e 0` start, and one Node process that reads the whole
// log line by line (what events.since did before it searched for its starting point).
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { option, repo } from './lib/harness.mjs';

const BUNDLE = join(repo, 'dist', 'dispatcher', 'archway-dispatcher.mjs');
const EVENTS = option('events', 1_000_000);
const RUNS = option('runs', 5);

const base = mkdtempSync(join(tmpdir(), 'archway-bench-events-'));
try {
  const state = join(base, 'state');
  for (const d of ['backup', 'archive', 'link', 'state']) mkdirSync(join(base, d), { recursive: true, mode: 0o700 });
  const log = join(state, 'events.log');
  const fd = openSync(log, 'w', 0o600);
  let batch = [];
  for (let seq = 1; seq <= EVENTS; seq++) {
    batch.push(
      JSON.stringify({
        seq,
        time: new Date(1_790_000_000_000 + seq * 1000).toISOString(),
        type: 'link.issued',
        customer: 'example.org',
        archiveId: 'a'.repeat(32),
        ip: '192.0.2.1',
        bytes: null,
        detail: null,
      }),
    );
    if (batch.length === 10_000) {
      writeSync(fd, `${batch.join('\n')}\n`);
      batch = [];
    }
  }
  if (batch.length > 0) writeSync(fd, `${batch.join('\n')}\n`);
  closeSync(fd);
  writeFileSync(join(base, 'secret'), `${randomBytes(24).toString('hex')}\n`, { mode: 0o600 });
  const config = join(base, 'dispatcher.json');
  writeFileSync(
    config,
    JSON.stringify({
      backupRoot: join(base, 'backup'),
      archiveRoot: join(base, 'archive'),
      linkRoot: join(base, 'link'),
      stateDir: state,
      secureLinkSecretFile: join(base, 'secret'),
      downloadBaseUrl: 'https://dl.example.net',
      downloadLog: join(base, 'download.log'),
    }),
    { mode: 0o600 },
  );

  // Wall time and peak RSS of one process, from GNU time's output on stderr.
  const measure = (argv, input) => {
    const r = spawnSync('/usr/bin/time', ['-f', '%e %M', ...argv], {
      input,
      encoding: 'utf8',
      env: { PATH: process.env.PATH, ARCHWAY_DISPATCHER_CONFIG: config },
    });
    if (r.status !== 0) throw new Error(`${argv.join(' ')} failed: ${r.stderr}`);
    const [secs, kib] = r.stderr.trim().split('\n').at(-1).split(' ').map(Number);
    return { ms: secs * 1000, kib, stdout: r.stdout };
  };
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const series = (argv, input) => {
    const runs = Array.from({ length: RUNS }, () => measure(argv, input));
    return { ms: median(runs.map((r) => r.ms)), kib: median(runs.map((r) => r.kib)), stdout: runs[0].stdout };
  };

  const bare = series([process.execPath, '-e', '0']);
  const fullRead = series([
    process.execPath,
    '-e',
    `const rl=require('readline').createInterface({input:require('fs').createReadStream(${JSON.stringify(log)})});let n=0;rl.on('line',(l)=>{if(JSON.parse(l).seq>${EVENTS - 10})n++});rl.on('close',()=>console.log(n))`,
  ]);
  const since = series([process.execPath, BUNDLE, 'events.since'], JSON.stringify({ after: EVENTS - 10, limit: 500 }));
  const answer = JSON.parse(since.stdout);
  if (!answer.ok || answer.result.events.length !== 10 || answer.result.lastSeq !== EVENTS)
    throw new Error(`unexpected answer: ${since.stdout.slice(0, 200)}`);

  console.log(
    `events.since, ${EVENTS} events in the log (${(statSync(log).size / 1048576).toFixed(0)} MiB), asking for the last 10; median of ${RUNS} runs`,
  );
  console.log(`  bare node start:                 ${bare.ms.toFixed(0)} ms, ${(bare.kib / 1024).toFixed(0)} MiB peak RSS`);
  console.log(`  reading the whole log (baseline): ${fullRead.ms.toFixed(0)} ms, ${(fullRead.kib / 1024).toFixed(0)} MiB`);
  console.log(`  dispatcher events.since:          ${since.ms.toFixed(0)} ms, ${(since.kib / 1024).toFixed(0)} MiB`);
  console.log(
    `  ratio events.since / whole-log read: ${(since.ms / fullRead.ms).toFixed(3)}x; over bare node start: +${(since.ms - bare.ms).toFixed(0)} ms`,
  );
} finally {
  rmSync(base, { recursive: true, force: true });
}

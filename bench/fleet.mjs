#!/usr/bin/env node
// SSH calls per backup host per minute while many archives build across a fleet, against a few builds in the same run.
//
// Usage: npm run build && npm run bench -- fleet [--hosts 3] [--builds 60] [--baseline 6] [--mib 8]
// Needs root (private sshd, sudo rule and test user per host, on 127.0.0.2, .3, ... like the tests),
// PostgreSQL's binaries (a throwaway cluster) and `archway serve` built in dist/.
// For each round it starts the builds on the hosts (as POST /archives does), lets one `archway serve`
// poll them, mail the links and copy events, and reads each host's dispatcher call log.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import { loadHarness, option, percentile, repo } from './lib/harness.mjs';

const HOSTS = option('hosts', 3);
const BUILDS = option('builds', 60);
const BASELINE = option('baseline', 6);
const MIB = option('mib', 8);
const pct = percentile;
const procStatus = (pid) => readFileSync(`/proc/${pid}/status`, 'utf8');
const rssMib = (pid) => Number(/VmRSS:\s+(\d+) kB/.exec(procStatus(pid))?.[1] ?? 0) / 1024;
/** utime + stime of the process, in seconds (clock ticks are 100 a second on Linux). */
const cpuSeconds = (pid) => {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
};
/** The host's dispatcher call log, a line per call; none before its first call. */
const callLog = (fixture) => {
  try {
    return readFileSync(join(fixture.stateDir, 'dispatcher.log'), 'utf8').split('\n').slice(0, -1);
  } catch (error) {
    if (error.code === 'ENOENT') return [];
    throw error;
  }
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const { startCluster, freeLoopbackPort, createSmtpSink, startBackupHost } = await loadHarness('fleet-harness', [
  "export { startCluster } from './test/harness/postgres-cluster.ts';",
  "export { freeLoopbackPort } from './test/harness/sshd.ts';",
  "export { createSmtpSink } from './test/harness/smtp-sink.ts';",
  "export { startBackupHost } from './test/backup-host/fixture.ts';",
]);
const { backupHostFromSettings } = await import(pathToFileURL(join(repo, 'dist', 'src', 'backup-host', 'index.js')).href);

const undo = [];
let portal;
try {
  const hosts = [];
  for (let n = 0; n < HOSTS; n++) {
    const fixture = await startBackupHost({ withNginx: false, listenAddress: `127.0.0.${n + 2}` });
    undo.push(() => fixture.stop());
    hosts.push({ name: `host-${n + 1}`, fixture, client: backupHostFromSettings(fixture.portalSettings) });
  }
  const dir = join(tmpdir(), `archway-fleet-bench-${randomBytes(4).toString('hex')}`);
  await mkdir(dir, { recursive: true });
  const hostsFile = join(dir, 'hosts.json');
  const entry = ({ name, fixture }) => ({
    name,
    address: fixture.sshd.host,
    port: fixture.sshd.port,
    user: fixture.portalSettings.user,
    keyFile: fixture.portalSettings.privateKeyPath,
    fingerprint: fixture.portalSettings.hostKeyFingerprint,
  });
  writeFileSync(hostsFile, JSON.stringify({ hosts: hosts.map(entry) }));

  const cluster = await startCluster();
  undo.push(() => cluster.stop());
  const admin = new pg.Client({ connectionString: cluster.adminUrl });
  await admin.connect();
  await admin.query('create database archway_fleet');
  await admin.end();
  const databaseUrl = cluster.adminUrl.replace(/\/postgres$/, '/archway_fleet');
  const sink = await createSmtpSink();
  undo.push(() => sink.stop());
  const port = await freeLoopbackPort();
  const env = {
    PATH: process.env.PATH,
    NODE_ENV: 'development',
    ARCHWAY_DATABASE_URL: databaseUrl,
    ARCHWAY_MIGRATE_ON_START: 'true',
    ARCHWAY_PORT: String(port),
    ARCHWAY_PUBLIC_URL: `http://127.0.0.1:${port}`,
    ARCHWAY_REQUIRE_HTTPS: 'false',
    ARCHWAY_LOG_LEVEL: 'warn',
    ARCHWAY_SMTP_URL: sink.url,
    ARCHWAY_BACKUP_HOSTS_FILE: hostsFile,
    ARCHWAY_SESSION_SECRET: randomBytes(32).toString('base64url'),
    ARCHWAY_ENCRYPTION_KEY: randomBytes(32).toString('hex'),
    ARCHWAY_PASSWORD_PEPPER: randomBytes(32).toString('base64url'),
  };
  portal = spawn(process.execPath, [join(repo, 'dist', 'src', 'main.js'), 'serve'], { cwd: repo, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  portal.stdout.on('data', (d) => (output += d));
  portal.stderr.on('data', (d) => (output += d));
  for (let tries = 0; ; tries++) {
    if (portal.exitCode !== null || tries > 600) throw new Error(`archway serve did not start: ${output}`);
    try {
      if ((await fetch(`http://127.0.0.1:${port}/readyz`)).ok) break;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  const db = new pg.Pool({ connectionString: databaseUrl, max: 8 });
  // The cluster stops at the end with connections still idle in the pool.
  db.on('error', () => undefined);

  /** One round: `count` builds spread over the hosts; returns the round's figures. */
  async function round(label, count) {
    const started = [];
    for (let i = 0; i < count; i++) {
      const host = hosts[i % hosts.length];
      const domain = `${label}-${i}.example.org`;
      const snapshot = join(host.fixture.backupRoot, domain, 'daily.0');
      await mkdir(snapshot, { recursive: true });
      await writeFile(join(snapshot, 'data.bin'), randomBytes(MIB * 1024 * 1024));
      const { rows } = await db.query(
        `insert into users (email, role, domain, plan, status, backup_host) values ($1, 'customer', $2, 'bench', 'active', $3) returning id`,
        [`${label}-${i}@example.net`, domain, host.name],
      );
      started.push({ host, domain, userId: rows[0].id });
    }
    const callLines = hosts.map((h) => callLog(h.fixture).length);
    const cpu0 = cpuSeconds(portal.pid);
    const t0 = Date.now();
    // What POST /archives does: archive.create on the customer's host, then the row in "building".
    await Promise.all(
      started.map(async (s) => {
        const { archiveId } = await s.host.client.createArchive({ customer: s.domain, snapshot: 'daily.0' });
        await db.query(
          `insert into archive_requests (user_id, customer, backup_host, snapshot, archive_id, state, next_poll_at)
           values ($1, $2, $3, 'daily.0', $4, 'building', now())`,
          [s.userId, s.domain, s.host.name, archiveId],
        );
      }),
    );
    let peakRss = 0;
    for (;;) {
      peakRss = Math.max(peakRss, rssMib(portal.pid));
      const { rows } = await db.query(
        `select count(*) filter (where notified_at is not null) as sent, count(*) filter (where state = 'failed') as failed
         from archive_requests where customer like $1`,
        [`${label}-%`],
      );
      if (Number(rows[0].failed) > 0) throw new Error(`${rows[0].failed} builds failed:\n${output}`);
      if (Number(rows[0].sent) === count) break;
      if (Date.now() - t0 > 15 * 60_000) throw new Error('the round did not finish in 15 minutes');
      await sleep(200);
    }
    const minutes = (Date.now() - t0) / 60_000;
    const cpu = cpuSeconds(portal.pid) - cpu0;
    const { rows: latencies } = await db.query(
      `select extract(epoch from notified_at - ready_at) * 1000 as ms from archive_requests where customer like $1`,
      [`${label}-%`],
    );
    const perHost = hosts.map((h, n) => {
      const lines = callLog(h.fixture).slice(callLines[n]);
      const byAction = {};
      for (const line of lines) {
        const action = JSON.parse(line).action;
        byAction[action] = (byAction[action] ?? 0) + 1;
      }
      const portalCalls = lines.length - (byAction['archive.create'] ?? 0);
      return { name: h.name, perMinute: portalCalls / minutes, byAction };
    });
    return { count, minutes, cpu, peakRss, latencies: latencies.map((r) => Number(r.ms)), perHost };
  }

  const report = (r) => {
    console.log(`\n${r.count} builds across ${HOSTS} hosts, ${MIB} MiB each: all emailed after ${(r.minutes * 60).toFixed(1)} s`);
    for (const h of r.perHost) {
      const detail = Object.entries(h.byAction)
        .filter(([a]) => a !== 'archive.create')
        .map(([a, n]) => `${a} ${n}`)
        .join(', ');
      console.log(`  ${h.name}: ${h.perMinute.toFixed(1)} portal calls/min (${detail})`);
    }
    console.log(`  ready -> email sent: p50 ${pct(r.latencies, 50).toFixed(0)} ms, p99 ${pct(r.latencies, 99).toFixed(0)} ms`);
    console.log(`  portal: CPU ${(r.cpu / (r.minutes * 60)).toFixed(3)} cores on average, RSS peak ${r.peakRss.toFixed(0)} MiB`);
  };
  const small = await round('base', BASELINE);
  report(small);
  const big = await round('load', BUILDS);
  report(big);
  const callsOf = (r) => r.perHost.reduce((a, h) => a + h.perMinute, 0) / r.perHost.length;
  const buildCalls = (r) =>
    r.perHost.reduce((a, h) => a + (h.byAction['archive.statuses'] ?? 0) + (h.byAction['archive.status'] ?? 0), 0) /
    r.perHost.length /
    r.minutes;
  console.log(
    `\nstatus calls per host per minute: ${buildCalls(small).toFixed(1)} with ${BASELINE} builds, ${buildCalls(big).toFixed(1)} with ${BUILDS}` +
      ` (ratio ${(buildCalls(big) / buildCalls(small)).toFixed(2)} for ${(BUILDS / BASELINE).toFixed(0)}x the builds)`,
  );
  console.log(
    `all portal calls per host per minute: ratio ${(callsOf(big) / callsOf(small)).toFixed(2)} (arm calls grow with emails sent, one each)`,
  );
  await db.end();
} finally {
  if (portal && portal.exitCode === null) {
    const exited = new Promise((r) => portal.once('exit', r));
    portal.kill('SIGTERM');
    await exited;
  }
  for (const fn of undo.reverse()) {
    try {
      await fn();
    } catch {
      // keep cleaning up
    }
  }
}

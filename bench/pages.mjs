// Backups page and download page latency with 50 concurrent signed-in customers on PostgreSQL, against /healthz, same run.
//
// Usage: npm run bench -- pages [--customers 50] [--healthz 20] [--backups 4] [--downloads 2]
// (the last three are requests per customer; the per-user rate limits allow 30 backups and 10 download
// pages a minute). Needs root (private sshd, sudo rule and test user, as in the tests).
//
// The real portal (`archway serve`) runs on a throwaway PostgreSQL cluster and reaches the backup-host
// fixture over SSH (gate, sudo, dispatcher), mail goes to an SMTP sink. Each customer signs in, asks
// for an archive, gets the link email, opens it once (the token moves into the cookie), then all
// customers at once load: /healthz (the baseline), /backups (backups.list over SSH), /downloads/<id>
// (link.issue and archive.arm over SSH). The portal's RSS is sampled from /proc throughout.
// Every page call is a fresh SSH connection and a dispatcher start, so on a small machine the figures
// measure that path; the defaults keep the whole run to a few minutes (setup included).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import { loadHarness, option, percentile, repo } from './lib/harness.mjs';

const CUSTOMERS = option('customers', 50);
const PER = { healthz: option('healthz', 20), backups: option('backups', 4), downloads: option('downloads', 2) };
const PASSWORD = `Bench-${randomBytes(9).toString('base64url')}-7`;

const mib = (kib) => (kib / 1024).toFixed(0);

function rssKib(pid) {
  return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
}

/** A browser reduced to what the portal needs: a cookie jar (paths ignored) and its own address. */
class Customer {
  constructor(url, email, address) {
    this.url = url;
    this.email = email;
    this.address = address;
    this.jar = new Map();
  }

  async fetch(path, init = {}) {
    const cookie = [...this.jar].map(([k, v]) => `${k}=${v}`).join('; ');
    const answer = await fetch(this.url + path, {
      redirect: 'manual',
      ...init,
      headers: { 'x-forwarded-for': this.address, cookie, ...init.headers },
    });
    for (const c of answer.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const eq = pair.indexOf('=');
      this.jar.set(pair.slice(0, eq), pair.slice(eq + 1));
    }
    return { status: answer.status, location: answer.headers.get('location'), body: await answer.text() };
  }

  async post(path, page, fields) {
    const csrf = /name="_csrf" value="([^"]+)"/.exec(page)?.[1] ?? '';
    return this.fetch(path, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ _csrf: csrf, ...fields }).toString(),
    });
  }

  /** Times one page load; anything but the expected status stops the bench (a fast error is not a figure). */
  async timed(path, expect, contains) {
    const t = process.hrtime.bigint();
    const page = await this.fetch(path);
    const ms = Number(process.hrtime.bigint() - t) / 1e6;
    if (page.status !== expect || (contains && !page.body.includes(contains)))
      throw new Error(`${path} answered ${page.status}: ${page.body.slice(0, 300)}`);
    return ms;
  }
}

/** Every customer at once, each making `count` sequential requests; returns all latencies. */
async function allAtOnce(customers, count, one) {
  const latencies = [];
  await Promise.all(
    customers.map(async (c) => {
      for (let i = 0; i < count; i++) latencies.push(await one(c));
    }),
  );
  return latencies;
}

const { startCluster, startBackupHost, createSmtpSink, freeLoopbackPort } = await loadHarness('pages-harness', [
  "export { startCluster } from './test/harness/postgres-cluster.ts';",
  "export { startBackupHost } from './test/backup-host/fixture.ts';",
  "export { createSmtpSink } from './test/harness/smtp-sink.ts';",
  "export { freeLoopbackPort } from './test/harness/sshd.ts';",
]);
const { createPasswordHasher } = await import(pathToFileURL(join(repo, 'dist', 'src', 'users', 'password-hasher.js')).href);
const { loadConfig } = await import(pathToFileURL(join(repo, 'dist', 'src', 'config.js')).href);

const undo = [];
let portal = null;
try {
  const cluster = await startCluster();
  undo.push(() => cluster.stop());
  const admin = new pg.Client({ connectionString: cluster.adminUrl });
  await admin.connect();
  await admin.query('create database archway_pages');
  await admin.end();
  const databaseUrl = cluster.adminUrl.replace(/\/postgres$/, '/archway_pages');

  const host = await startBackupHost({ withNginx: false });
  undo.push(() => host.stop());
  const sink = await createSmtpSink();
  undo.push(() => sink.stop());

  const port = await freeLoopbackPort();
  const url = `http://127.0.0.1:${port}`;
  const env = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    ARCHWAY_DATABASE_URL: databaseUrl,
    ARCHWAY_MIGRATE_ON_START: 'true',
    ARCHWAY_PORT: String(port),
    ARCHWAY_PUBLIC_URL: url,
    ARCHWAY_REQUIRE_HTTPS: 'false',
    ARCHWAY_LOG_LEVEL: 'warn',
    // Each customer comes from its own address, as real customers do; the bench is the trusted proxy.
    ARCHWAY_TRUST_PROXY: '127.0.0.1',
    ARCHWAY_SMTP_URL: sink.url,
    ARCHWAY_SESSION_SECRET: randomBytes(32).toString('base64url'),
    ARCHWAY_ENCRYPTION_KEY: randomBytes(32).toString('hex'),
    ARCHWAY_PASSWORD_PEPPER: randomBytes(32).toString('base64url'),
    ARCHWAY_BACKUP_HOST: host.portalSettings.host,
    ARCHWAY_BACKUP_HOST_PORT: String(host.portalSettings.port),
    ARCHWAY_BACKUP_HOST_USER: host.portalSettings.user,
    ARCHWAY_BACKUP_HOST_KEY_FILE: host.portalSettings.privateKeyPath,
    ARCHWAY_BACKUP_HOST_FINGERPRINT: host.portalSettings.hostKeyFingerprint,
  };
  portal = spawn(process.execPath, [join(repo, 'dist', 'src', 'main.js'), 'serve'], {
    cwd: host.base,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  portal.stdout.on('data', (d) => (output += d));
  portal.stderr.on('data', (d) => (output += d));
  for (
    let tries = 0;
    !(await fetch(`${url}/readyz`).then(
      (r) => r.ok,
      () => false,
    ));
    tries++
  ) {
    if (portal.exitCode !== null || tries > 600) throw new Error(`archway serve did not start: ${output}`);
    await new Promise((r) => setTimeout(r, 100));
  }

  // Customers, each with a domain and one snapshot on the backup host; one password hash serves all.
  const config = loadConfig(env, repo);
  const hash = await createPasswordHasher({ auth: config.auth, secrets: { passwordPepper: env.ARCHWAY_PASSWORD_PEPPER } }).hash(PASSWORD);
  const db = new pg.Client({ connectionString: databaseUrl });
  await db.connect();
  const customers = [];
  for (let n = 0; n < CUSTOMERS; n++) {
    const domain = `site${n}.bench.example.net`;
    const email = `customer${n}@bench.example.net`;
    await db.query(
      `insert into users (email, role, domain, plan, status, password_hash) values ($1, 'customer', $2, 'small', 'active', $3)`,
      [email, domain, hash],
    );
    const snapshot = join(host.backupRoot, domain, 'daily.0');
    mkdirSync(snapshot, { recursive: true });
    writeFileSync(join(snapshot, 'dump.sql'), `-- ${domain}\n`.repeat(2000));
    customers.push(new Customer(url, email, `10.77.${n >> 8}.${(n & 255) + 1}`));
  }
  await db.end();

  process.stdout.write(`${CUSTOMERS} customers sign in and ask for an archive... `);
  const t0 = Date.now();
  await Promise.all(
    customers.map(async (c) => {
      const form = await c.fetch('/sign-in');
      const signedIn = await c.post('/sign-in', form.body, { email: c.email, password: PASSWORD });
      if (signedIn.status !== 303) throw new Error(`sign-in answered ${signedIn.status}`);
      const backups = await c.fetch('/backups');
      const asked = await c.post('/archives', backups.body, { snapshot: 'daily.0' });
      if (asked.status !== 303) throw new Error(`asking for an archive answered ${asked.status}: ${asked.body.slice(0, 300)}`);
    }),
  );
  const mails = await sink.waitForMessages(CUSTOMERS, 180_000);
  for (const c of customers) {
    const mail = mails.find((m) => m.to?.text?.includes(c.email));
    const path = /https?:\/\/[^/\s]+(\/downloads\/[0-9a-f-]{36})\?t=([A-Za-z0-9_-]{43})/.exec(mail?.text ?? '');
    if (!path) throw new Error(`no link email for ${c.email}`);
    c.downloadPath = path[1];
    const opened = await c.fetch(`${path[1]}?t=${path[2]}`);
    if (opened.status !== 303) throw new Error(`opening the emailed link answered ${opened.status}`);
  }
  console.log(`ready and mailed in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

  // Warm-up (views compiled, pools filled), not counted.
  await allAtOnce(customers.slice(0, 5), 2, (c) => c.timed('/healthz', 200));

  const rss = { idle: rssKib(portal.pid), peak: 0 };
  const sampler = setInterval(() => (rss.peak = Math.max(rss.peak, rssKib(portal.pid))), 100);
  const load0 = loadavg();
  const results = {};
  const started = Date.now();
  results.healthz = await allAtOnce(customers, PER.healthz, (c) => c.timed('/healthz', 200));
  results.backups = await allAtOnce(customers, PER.backups, (c) => c.timed('/backups', 200, 'daily.0'));
  results.downloads = await allAtOnce(customers, PER.downloads, (c) => c.timed(c.downloadPath, 200, '/dl/'));
  const seconds = (Date.now() - started) / 1000;
  clearInterval(sampler);
  rss.peak = Math.max(rss.peak, rssKib(portal.pid));
  const load1 = loadavg();

  const base = { p50: percentile(results.healthz, 50), p99: percentile(results.healthz, 99) };
  console.log(
    `${CUSTOMERS} concurrent signed-in customers, PostgreSQL 15 (throwaway cluster), backup host over SSH (gate, sudo, dispatcher); ${seconds.toFixed(0)} s measured`,
  );
  console.log(`load average before ${load0.map((l) => l.toFixed(2)).join(' ')}, after ${load1.map((l) => l.toFixed(2)).join(' ')}`);
  const row = (label, xs) => {
    const p50 = percentile(xs, 50);
    const p99 = percentile(xs, 99);
    const ratios =
      xs === results.healthz ? '(baseline)' : `(x${(p50 / base.p50).toFixed(1)} / x${(p99 / base.p99).toFixed(1)} of /healthz)`;
    console.log(
      `${label.padEnd(34)} n=${String(xs.length).padStart(4)}  p50 ${p50.toFixed(1).padStart(7)} ms  p99 ${p99.toFixed(1).padStart(7)} ms  ${ratios}`,
    );
  };
  row('/healthz', results.healthz);
  row('backups page (backups.list)', results.backups);
  row('download page (link.issue + arm)', results.downloads);
  console.log(`portal RSS: ${mib(rss.idle)} MiB before the measured requests, ${mib(rss.peak)} MiB peak during them`);
} finally {
  if (portal && portal.exitCode === null) {
    portal.kill('SIGTERM');
    await new Promise((r) => portal.once('exit', r));
  }
  for (const fn of undo.reverse()) await fn().catch((e) => console.error(`cleanup: ${e.message}`));
}

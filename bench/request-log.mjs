// The operator's request log at 10 million rows on PostgreSQL: filtered pages (first and deep), the CSV export, and the charts.
//
// Usage: npm run bench -- request-log [--rows 10000000] [--customers 10000] [--samples 40]
//
// The real portal (`archway serve`) runs on a throwaway PostgreSQL cluster. The log is seeded with
// `--rows` rows over 60 days (customers, 60,000 addresses, every kind and outcome), the way the
// producers write them; the seed builds the indexes after the rows, as a restore would, and fills the
// hourly counts the charts read. An operator signs in with two-factor and each page is timed over
// real HTTP, against /healthz measured in the same run. The export streams one filtered view whole
// while the portal's RSS is sampled from /proc.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import { loadHarness, option, percentile, repo } from './lib/harness.mjs';

const ROWS = option('rows', 10_000_000);
const CUSTOMERS = option('customers', 10_000);
const SAMPLES = option('samples', 40);
const DAYS = 60;
const PASSWORD = `Bench-${randomBytes(9).toString('base64url')}-7`;

const dist = (path) => import(pathToFileURL(join(repo, 'dist', 'src', path)).href);
const rssKib = (pid) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
const seconds = (t0) => ((Date.now() - t0) / 1000).toFixed(0);

/** The operator's browser: a cookie jar and the CSRF token of the last form. */
class Browser {
  constructor(url) {
    this.url = url;
    this.jar = new Map();
  }
  async fetch(path, init = {}) {
    const cookie = [...this.jar].map(([k, v]) => `${k}=${v}`).join('; ');
    const answer = await fetch(this.url + path, { redirect: 'manual', ...init, headers: { cookie, ...init.headers } });
    for (const c of answer.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const eq = pair.indexOf('=');
      this.jar.set(pair.slice(0, eq), pair.slice(eq + 1));
    }
    return answer;
  }
  async post(path, page, fields) {
    const csrf = /name="_csrf" value="([^"]+)"/.exec(page)?.[1] ?? '';
    return this.fetch(path, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ _csrf: csrf, ...fields }).toString(),
    });
  }
  /** One page, timed; anything but 200 stops the bench (a fast error is not a figure). Returns [ms, body]. */
  async timed(path) {
    const t = process.hrtime.bigint();
    const answer = await this.fetch(path);
    const body = await answer.text();
    const ms = Number(process.hrtime.bigint() - t) / 1e6;
    if (answer.status !== 200) throw new Error(`${path} answered ${answer.status}: ${body.slice(0, 300)}`);
    return [ms, body];
  }
}

async function seed(db) {
  let t0 = Date.now();
  process.stdout.write(`${CUSTOMERS} customers... `);
  await db.query(
    `insert into users (email, role, domain, plan, status)
     select 'customer' || g || '@bench.example.net', 'customer', 'site' || g || '.bench.example.net', 'small', 'active'
     from generate_series(1, $1) g`,
    [CUSTOMERS],
  );
  await db.query(
    `create temporary table bench_users as select row_number() over (order by id) - 1 as n, id from users where role = 'customer'`,
  );
  await db.query('create index on bench_users (n)');
  console.log(`${seconds(t0)} s`);

  // As a restore would: rows first, then the indexes; the trigger's counts are filled in one pass.
  const indexes = (
    await db.query(`select indexname, indexdef from pg_indexes where tablename = 'request_log' and indexname <> 'request_log_pkey'`)
  ).rows;
  for (const { indexname } of indexes) await db.query(`drop index ${indexname}`);
  await db.query('alter table request_log disable trigger request_log_count');
  const chunk = 1_000_000;
  t0 = Date.now();
  for (let done = 0; done < ROWS; done += chunk) {
    const n = Math.min(chunk, ROWS - done);
    await db.query(
      `insert into request_log (at, user_id, ip, kind, event, outcome, detail)
       select now() - (random() * $3 * interval '1 day'),
              (select id from bench_users where n = (g * 7919) % $4),
              ('10.' || (g % 60) || '.' || ((g / 60) % 250) || '.' || (g % 4 + 1))::inet,
              k.kind, k.event,
              case when g % 11 = 0 then 'failure' else k.outcome end,
              jsonb_build_object('reason', 'bench', 'n', g)
       from generate_series($1::bigint, $1::bigint + $2 - 1) g
       cross join lateral (select * from (values
         (0, 'sign-in', 'password', 'success'), (1, 'two-factor', 'second-step', 'success'), (2, 'block', 'started', 'blocked'),
         (3, 'archive', 'requested', 'success'), (4, 'link', 'issued', 'success'), (5, 'download', 'completed', 'success'),
         (6, 'account', 'user.invited', 'info')) v (i, kind, event, outcome) where v.i = g % 7) k`,
      [done, n, DAYS, CUSTOMERS],
    );
    process.stdout.write(`\rseeding the log: ${(done + n).toLocaleString('en')} rows, ${seconds(t0)} s`);
  }
  console.log();
  t0 = Date.now();
  for (const { indexdef } of indexes) await db.query(indexdef);
  await db.query('alter table request_log enable trigger request_log_count');
  await db.query(`insert into request_log_hourly (hour, kind, event, outcome, n)
    select date_trunc('hour', at, 'UTC'), kind, event, outcome, count(*) from request_log group by 1, 2, 3, 4
    on conflict (hour, kind, event, outcome) do update set n = excluded.n`);
  await db.query('vacuum analyze request_log');
  await db.query('analyze request_log_hourly');
  console.log(`indexes, hourly counts and statistics: ${seconds(t0)} s`);
  const size = (await db.query(`select pg_size_pretty(pg_total_relation_size('request_log')) s`)).rows[0].s;
  console.log(`request_log: ${ROWS.toLocaleString('en')} rows, ${size} with indexes`);
}

const { startCluster, freeLoopbackPort, createSmtpSink } = await loadHarness('request-log-harness', [
  "export { startCluster } from './test/harness/postgres-cluster.ts';",
  "export { freeLoopbackPort } from './test/harness/sshd.ts';",
  "export { createSmtpSink } from './test/harness/smtp-sink.ts';",
]);
const { createPasswordHasher } = await dist('users/password-hasher.js');
const { loadConfig } = await dist('config.js');
const { createKeyRing } = await dist('two-factor/key-ring.js');
const { codeAt, generateSecret } = await dist('two-factor/totp.js');

const undo = [];
let portal = null;
try {
  const cluster = await startCluster();
  undo.push(() => cluster.stop());
  const admin = new pg.Client({ connectionString: cluster.adminUrl });
  await admin.connect();
  await admin.query('create database archway_log');
  await admin.end();
  const databaseUrl = cluster.adminUrl.replace(/\/postgres$/, '/archway_log');

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
    ARCHWAY_SMTP_URL: sink.url,
    ARCHWAY_SESSION_SECRET: randomBytes(32).toString('base64url'),
    ARCHWAY_ENCRYPTION_KEY: randomBytes(32).toString('hex'),
    ARCHWAY_PASSWORD_PEPPER: randomBytes(32).toString('base64url'),
  };
  portal = spawn(process.execPath, [join(repo, 'dist', 'src', 'main.js'), 'serve'], { cwd: repo, env, stdio: ['ignore', 'pipe', 'pipe'] });
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

  // The operator, with two-factor on (the portal lets no operator in without it).
  const config = loadConfig(env, repo);
  const hash = await createPasswordHasher({ auth: config.auth, secrets: { passwordPepper: env.ARCHWAY_PASSWORD_PEPPER } }).hash(PASSWORD);
  const db = new pg.Client({ connectionString: databaseUrl });
  await db.connect();
  db.on('error', () => undefined); // the cluster stops under it at the end
  const operatorId = (
    await db.query(
      `insert into users (email, role, status, password_hash) values ('operator@bench.example.net', 'operator', 'active', $1) returning id`,
      [hash],
    )
  ).rows[0].id;
  const secret = generateSecret();
  const encrypted = createKeyRing(config.secrets.encryptionKey).encrypt(secret, operatorId);
  await db.query(`insert into two_factor (user_id, secret_encrypted, created_at, enabled_at) values ($1, $2, now(), now())`, [
    operatorId,
    encrypted,
  ]);
  await seed(db);

  const desk = new Browser(url);
  const form = await (await desk.fetch('/sign-in')).text();
  await desk.post('/sign-in', form, { email: 'operator@bench.example.net', password: PASSWORD });
  const step = await (await desk.fetch('/sign-in/two-factor')).text();
  const done = await desk.post('/sign-in/two-factor', step, { code: codeAt(secret, new Date()) });
  if (done.headers.get('location') !== '/operator') throw new Error(`the operator could not sign in: ${done.status}`);

  const someone = (
    await db.query(`select u.email from users u where role = 'customer' order by id limit 1 offset $1`, [Math.floor(CUSTOMERS / 2)])
  ).rows[0].email;
  const day = (ago) => new Date(Date.now() - ago * 86_400_000).toISOString().slice(0, 10);
  const views = {
    'customer (~1,000 rows)': `customer=${encodeURIComponent(someone)}`,
    'IP address': 'ip=10.17.42.2',
    'IP range /16': 'ip=10.17.0.0/16',
    'kind + 7 days': `kind=download&from=${day(10)}&to=${day(4)}`,
    'customer + kind + 30 days': `customer=${encodeURIComponent(someone)}&kind=sign-in&from=${day(30)}&to=${day(0)}`,
    'outcome, no other filter': 'outcome=failure',
  };

  for (let i = 0; i < 5; i++) await desk.timed('/healthz'); // warm-up: views compiled, pool filled
  const healthz = [];
  for (let i = 0; i < SAMPLES; i++) healthz.push((await desk.timed('/healthz'))[0]);
  const base = percentile(healthz, 95);
  console.log(`\n/healthz baseline: p50 ${percentile(healthz, 50).toFixed(1)} ms, p95 ${base.toFixed(1)} ms (n=${SAMPLES})`);
  const row = (label, xs) =>
    console.log(
      `${label.padEnd(44)} n=${String(xs.length).padStart(3)}  p50 ${percentile(xs, 50).toFixed(1).padStart(6)} ms  p95 ${percentile(xs, 95).toFixed(1).padStart(6)} ms  (x${(percentile(xs, 95) / base).toFixed(1)} of /healthz p95)`,
    );

  console.log('\nRequest log pages (50 rows each), over HTTP:');
  for (const [label, query] of Object.entries(views)) {
    const first = [];
    for (let i = 0; i < SAMPLES; i++) first.push((await desk.timed(`/operator/log?${query}`))[0]);
    row(`${label}, first page`, first);
    // Deep: follow "Older entries" 20 pages down, then time that page again and again.
    let path = `/operator/log?${query}`;
    let depth = 0;
    for (; depth < 20; depth++) {
      const next = /<a href="([^"]+)" rel="next">/.exec((await desk.timed(path))[1])?.[1];
      if (next === undefined) break;
      path = next.replace(/&amp;/g, '&');
    }
    const deep = [];
    for (let i = 0; i < SAMPLES; i++) deep.push((await desk.timed(path))[0]);
    row(`${label}, page ${depth + 1}`, deep);
  }

  console.log('\nCharts over 30 days:');
  for (const by of ['day', 'hour']) {
    const xs = [];
    for (let i = 0; i < SAMPLES; i++) xs.push((await desk.timed(`/operator/activity?from=${day(29)}&to=${day(0)}&by=${by}`))[0]);
    row(`/operator/activity per ${by}`, xs);
  }

  console.log('\nCSV export (streamed, keyset batches); flat memory means the same peak for a small and a large export:');
  for (const [label, query] of [
    ['kind=download, last 3 days', `kind=download&from=${day(2)}&to=${day(0)}`],
    ['kind=download, all 60 days', 'kind=download'],
  ]) {
    const rss = { before: rssKib(portal.pid), peak: 0 };
    const sampler = setInterval(() => (rss.peak = Math.max(rss.peak, rssKib(portal.pid))), 50);
    const t0 = process.hrtime.bigint();
    const answer = await desk.fetch(`/operator/log.csv?${query}`);
    let bytes = 0;
    let lines = 0;
    for await (const chunk of answer.body) {
      bytes += chunk.length;
      for (const b of chunk) if (b === 10) lines++;
    }
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    clearInterval(sampler);
    console.log(
      `${label}: ${(lines - 1).toLocaleString('en')} rows, ${(bytes / 1e6).toFixed(0)} MB in ${s.toFixed(1)} s = ${Math.round((lines - 1) / s).toLocaleString('en')} rows/s; ` +
        `portal RSS ${(rss.before / 1024).toFixed(0)} MiB before, ${(Math.max(rss.peak, rss.before) / 1024).toFixed(0)} MiB peak`,
    );
  }
  await db.end();
} finally {
  if (portal !== null && portal.exitCode === null) {
    portal.kill('SIGTERM');
    await new Promise((r) => portal.once('exit', r));
  }
  for (const step of undo.reverse()) await step();
}

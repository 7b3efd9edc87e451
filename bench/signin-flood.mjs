// A signed-in user's account page, quiet and while 200 clients flood the sign-in form with wrong passwords.
// Usage: npm run bench -- signin-flood [seconds=15] [flooders=200] [one-address|distributed]
// one-address: every flooder comes from 127.0.0.1 (it is soon IP-blocked); distributed (default): each
// flooder claims its own address through X-Forwarded-For from a trusted proxy, so no block stops the argon2 work.
// Runs the real portal (`archway serve`) in first-look mode (embedded database) unless ARCHWAY_DATABASE_URL
// is set: then it creates a fresh database on that PostgreSQL server (the user must be allowed to), runs
// the portal on it, and drops it afterwards.
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const seconds = Number(process.argv[2] ?? 15);
const flooders = Number(process.argv[3] ?? 200);
const distributed = (process.argv[4] ?? 'distributed') === 'distributed';
const dist = path.join(root, 'dist/src');
if (!existsSync(path.join(dist, 'main.js'))) {
  console.error('dist/ is missing: run "npm run build" first (npm run bench does).');
  process.exit(1);
}

const percentile = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((xs.length * p) / 100))];
const fmt = (n) => (n === undefined ? '-' : n.toFixed(1));
const passthrough = Object.fromEntries(
  Object.entries(process.env).filter(([k]) => /^ARCHWAY_(ARGON2_|HASH_CONCURRENCY|SIGNIN_|DATABASE_URL)/.test(k)),
);
const serverMode = passthrough.ARCHWAY_DATABASE_URL !== undefined;
const pg = serverMode ? (await import('pg')).default : null;
const admin = async (statement) => {
  const client = new pg.Client({ connectionString: process.env.ARCHWAY_DATABASE_URL });
  await client.connect();
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
};
let benchDatabase = null;
if (serverMode) {
  benchDatabase = `archway_flood_${randomBytes(4).toString('hex')}`;
  await admin(`create database ${benchDatabase}`);
  const url = new URL(process.env.ARCHWAY_DATABASE_URL);
  url.pathname = `/${benchDatabase}`;
  passthrough.ARCHWAY_DATABASE_URL = url.href;
}

const port = await new Promise((resolve) => {
  const probe = createServer().listen(0, '127.0.0.1', () => {
    const { port: free } = probe.address();
    probe.close(() => resolve(free));
  });
});
const cwd = mkdtempSync(path.join(tmpdir(), 'archway-bench-flood-'));
const secrets = serverMode
  ? {
      ARCHWAY_SESSION_SECRET: randomBytes(32).toString('base64url'),
      ARCHWAY_ENCRYPTION_KEY: randomBytes(32).toString('hex'),
      ARCHWAY_PASSWORD_PEPPER: randomBytes(32).toString('base64url'),
      ARCHWAY_SMTP_URL: 'smtp://127.0.0.1:9',
      ARCHWAY_REQUIRE_HTTPS: 'false',
      ARCHWAY_MIGRATE_ON_START: 'true',
    }
  : {};
const child = spawn(process.execPath, [path.join(dist, 'main.js'), 'serve'], {
  cwd,
  env: {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    ARCHWAY_PORT: String(port),
    ARCHWAY_LOG_LEVEL: 'warn',
    ...(distributed ? { ARCHWAY_TRUST_PROXY: '127.0.0.1' } : {}),
    ...passthrough,
    ...secrets,
  },
});
let output = '';
const load0 = loadavg();

try {
  // Ready when /readyz answers (first-look mode also prints the demo accounts first).
  const url = `http://127.0.0.1:${port}`;
  let exited = null;
  child.stdout.on('data', (chunk) => (output += chunk));
  child.stderr.on('data', (chunk) => (output += chunk));
  child.once('exit', (code) => (exited = code));
  for (let tries = 0; ; tries += 1) {
    if (exited !== null) throw new Error(`archway serve exited ${exited}: ${output}`);
    const ready = await fetch(`${url}/readyz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ready && (serverMode || existsSync(path.join(cwd, 'var/first-look-accounts.txt')))) break;
    if (tries > 600) throw new Error(`archway serve did not start: ${output}`);
    await new Promise((r) => setTimeout(r, 100));
  }

  let email;
  let password;
  if (serverMode) {
    ({ email, password } = await createBenchUser(passthrough.ARCHWAY_DATABASE_URL, secrets.ARCHWAY_PASSWORD_PEPPER));
  } else {
    [, email, password] = readFileSync(path.join(cwd, 'var/first-look-accounts.txt'), 'utf8').split('\n')[1].split(' ');
  }

  /** A browser's cookie jar, reduced to what the portal sets. */
  const cookiesOf = (response, jar = new Map()) => {
    for (const c of response.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const eq = pair.indexOf('=');
      jar.set(pair.slice(0, eq), pair.slice(eq + 1));
    }
    return jar;
  };
  const header = (jar) => [...jar].map(([k, v]) => `${k}=${v}`).join('; ');

  // The signed-in user whose page is measured.
  const form = await fetch(`${url}/sign-in`);
  const jar = cookiesOf(form);
  const token = /name="_csrf" value="([^"]+)"/.exec(await form.text())?.[1] ?? '';
  const signedIn = await fetch(`${url}/sign-in`, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: header(jar) },
    body: new URLSearchParams({ _csrf: token, email, password }).toString(),
  });
  cookiesOf(signedIn, jar);
  if (signedIn.status !== 303) throw new Error(`sign-in answered ${signedIn.status}`);

  const accountPage = async () => {
    const t = process.hrtime.bigint();
    const answer = await fetch(`${url}/account`, { headers: { cookie: header(jar) }, redirect: 'manual' });
    cookiesOf(answer, jar);
    await answer.arrayBuffer();
    if (answer.status !== 200) throw new Error(`account page answered ${answer.status}`);
    return Number(process.hrtime.bigint() - t) / 1e6;
  };
  for (let i = 0; i < 20; i += 1) await accountPage(); // warm-up: views compiled, pool filled

  const sample = async (until) => {
    const latencies = [];
    while (Date.now() < until) latencies.push(await accountPage());
    return latencies;
  };

  // Quiet before and after the flood: other work on a shared machine then weighs on both sides alike.
  const quietBefore = await sample(Date.now() + (seconds * 1000) / 2);

  // The flood: each client gets a form (its own CSRF cookie and token) and posts wrong passwords
  // as fast as the portal answers, for the real address and for made-up ones.
  let stop = false;
  const outcomes = new Map();
  let attempts = 0;
  const flooder = async (n) => {
    const from = distributed ? { 'x-forwarded-for': `10.${(n >> 8) & 255}.${n & 255}.7` } : {};
    const page = await fetch(`${url}/sign-in`, { headers: from });
    const own = cookiesOf(page);
    const t = /name="_csrf" value="([^"]+)"/.exec(await page.text())?.[1] ?? '';
    for (let i = 0; !stop; i += 1) {
      const target = i % 2 === 0 ? email : `nobody${n}-${i}@example.net`;
      try {
        const answer = await fetch(`${url}/sign-in`, {
          method: 'POST',
          redirect: 'manual',
          headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: header(own), ...from },
          body: new URLSearchParams({ _csrf: t, email: target, password: `Wrong-Guess-${n}-${i}` }).toString(),
        });
        await answer.arrayBuffer();
        outcomes.set(answer.status, (outcomes.get(answer.status) ?? 0) + 1);
      } catch {
        outcomes.set('error', (outcomes.get('error') ?? 0) + 1);
      }
      attempts += 1;
    }
  };
  const floodStarted = Date.now();
  const flood = Promise.all(Array.from({ length: flooders }, (_, n) => flooder(n)));
  await new Promise((r) => setTimeout(r, 2000)); // let the flood reach full strength
  const attemptsBefore = attempts;
  const measuredFrom = Date.now();
  const underAttack = await sample(Date.now() + seconds * 1000);
  const attemptRate = (attempts - attemptsBefore) / ((Date.now() - measuredFrom) / 1000);
  stop = true;
  await flood;
  await new Promise((r) => setTimeout(r, 1000)); // let the last flood answers drain
  const quietAfter = await sample(Date.now() + (seconds * 1000) / 2);
  const quiet = [...quietBefore, ...quietAfter];
  const load1 = loadavg();

  const q99 = percentile(quiet, 99);
  const a99 = percentile(underAttack, 99);
  console.log(
    `mode: ${serverMode ? 'server (PostgreSQL)' : 'first-look (embedded database)'}; ${availableParallelism()} CPUs; load average before ${load0.map((l) => l.toFixed(2)).join(' ')}, after ${load1.map((l) => l.toFixed(2)).join(' ')}`,
  );
  console.log(
    `account page, quiet:        n=${quiet.length}, p50 ${fmt(percentile(quiet, 50))} ms, p99 ${fmt(q99)} ms (before the flood p99 ${fmt(percentile(quietBefore, 99))} ms, after ${fmt(percentile(quietAfter, 99))} ms)`,
  );
  console.log(`account page, under flood:  n=${underAttack.length}, p50 ${fmt(percentile(underAttack, 50))} ms, p99 ${fmt(a99)} ms`);
  console.log(
    `flood: ${flooders} clients (${distributed ? 'each from its own address' : 'all from one address'}), ${fmt(attemptRate)} wrong-password posts/s answered while measured; statuses ${JSON.stringify(Object.fromEntries(outcomes))}; ${((Date.now() - floodStarted) / 1000).toFixed(0)} s in all`,
  );
  console.log(`p99 under flood / quiet p99 = ${(a99 / q99).toFixed(2)} (target <= 3)`);
} finally {
  child.kill('SIGTERM');
  await new Promise((r) => (child.exitCode === null ? child.once('exit', r) : r()));
  rmSync(cwd, { recursive: true, force: true });
  if (benchDatabase !== null) await admin(`drop database if exists ${benchDatabase} with (force)`);
}

/** Server mode: a customer made straight in the database, hashed the way the portal hashes. */
async function createBenchUser(databaseUrl, pepper) {
  const { loadConfig } = await import(path.join(dist, 'config.js'));
  const { createPasswordHasher } = await import(path.join(dist, 'auth/password-hasher.js'));
  const config = loadConfig({ ...passthrough, ...secrets }, root);
  const hasher = createPasswordHasher({ auth: config.auth, secrets: { passwordPepper: pepper } });
  const email = `bench-${randomBytes(4).toString('hex')}@example.net`;
  const password = `Bench-${randomBytes(9).toString('base64url')}-7`;
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    await client.query(
      `insert into users (email, role, domain, plan, status, password_hash) values ($1, 'customer', 'social.example.net', 'small', 'active', $2)`,
      [email, await hasher.hash(password)],
    );
  } finally {
    await client.end();
  }
  return { email, password };
}

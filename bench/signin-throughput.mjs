// Correct-password sign-ins per second with the configured argon2 parameters: the hasher alone, then the real sign-in form.
// Usage: npm run bench -- signin-throughput [seconds=10]   (ARCHWAY_ARGON2_* and ARCHWAY_HASH_CONCURRENCY apply)
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const seconds = Number(process.argv[2] ?? 10);
const dist = path.join(root, 'dist/src');
if (!existsSync(path.join(dist, 'main.js'))) {
  console.error('dist/ is missing: run "npm run build" first (npm run bench does).');
  process.exit(1);
}
const { loadConfig } = await import(path.join(dist, 'config.js'));
const { createPasswordHasher } = await import(path.join(dist, 'auth/password-hasher.js'));

const settings = Object.fromEntries(Object.entries(process.env).filter(([k]) => /^ARCHWAY_(ARGON2_|HASH_CONCURRENCY)/.test(k)));
const config = loadConfig(settings, root);
const { memoryKiB, timeCost, parallelism } = config.auth.argon2;
const concurrency = config.auth.hashConcurrency;
const clients = Math.max(4, concurrency * 2);
const percentile = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((xs.length * p) / 100))];
const fmt = (n) => n.toFixed(1);

console.log(
  `argon2id m=${memoryKiB} KiB, t=${timeCost}, p=${parallelism}; hash concurrency ${concurrency}; ${availableParallelism()} CPUs; ${clients} clients; ${seconds} s per phase`,
);

/** Runs `clients` loops of `once` for the duration; returns rate and latency figures. */
async function load(once) {
  const latencies = [];
  let errors = 0;
  const deadline = Date.now() + seconds * 1000;
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (Date.now() < deadline) {
        const t = process.hrtime.bigint();
        try {
          await once();
          latencies.push(Number(process.hrtime.bigint() - t) / 1e6);
        } catch {
          errors += 1;
        }
      }
    }),
  );
  const elapsed = Number(process.hrtime.bigint() - started) / 1e9;
  return {
    perSecond: latencies.length / elapsed,
    count: latencies.length,
    errors,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
  };
}

// Phase 1: the hasher alone (HMAC + argon2.verify in libuv threads, behind the semaphore).
const hasher = createPasswordHasher({ auth: config.auth, secrets: { passwordPepper: randomBytes(32).toString('base64url') } });
const password = 'Tangerine-Harbour-42';
const stored = await hasher.hash(password);
const raw = await load(async () => {
  const { ok } = await hasher.verify(stored, password);
  if (!ok) throw new Error('verify failed');
});
console.log(
  `hasher only: ${fmt(raw.perSecond)} verifications/s (n=${raw.count}, errors=${raw.errors}), latency p50 ${fmt(raw.p50)} ms, p99 ${fmt(raw.p99)} ms`,
);

// Phase 2: the real portal in first-look mode; each sign-in fetches the form (CSRF cookie and token) and posts it.
const cwd = mkdtempSync(path.join(tmpdir(), 'archway-bench-signin-'));
const child = spawn(process.execPath, [path.join(dist, 'main.js'), 'serve'], {
  cwd,
  env: { PATH: process.env.PATH, HOME: process.env.HOME, ARCHWAY_PORT: '0', ARCHWAY_LOG_LEVEL: 'warn', ...settings },
});
let output = '';
try {
  const url = await new Promise((resolve, reject) => {
    const onData = (chunk) => {
      output += chunk;
      const match = /Sign in at (http:\/\/[\d.:]+)\/sign-in/.exec(output);
      if (match) resolve(match[1]);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code) => reject(new Error(`archway serve exited ${code}: ${output}`)));
  });
  const [, email, demoPassword] = readFileSync(path.join(cwd, 'var/first-look-accounts.txt'), 'utf8').split('\n')[1].split(' ');
  const signIn = async () => {
    const form = await fetch(`${url}/sign-in`);
    const cookie = form.headers
      .getSetCookie()
      .map((c) => c.split(';')[0])
      .join('; ');
    const token = /name="_csrf" value="([^"]+)"/.exec(await form.text())?.[1] ?? '';
    const answer = await fetch(`${url}/sign-in`, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded', cookie },
      body: new URLSearchParams({ _csrf: token, email, password: demoPassword }).toString(),
    });
    await answer.arrayBuffer();
    if (answer.status !== 303) throw new Error(`sign-in answered ${answer.status}`);
  };
  await signIn(); // warm-up: the first request compiles the views
  const web = await load(signIn);
  console.log(
    `sign-in form (GET + POST, real server, embedded database): ${fmt(web.perSecond)} sign-ins/s (n=${web.count}, errors=${web.errors}), latency p50 ${fmt(web.p50)} ms, p99 ${fmt(web.p99)} ms`,
  );
} finally {
  child.kill('SIGTERM');
  await new Promise((r) => (child.exitCode === null ? child.once('exit', r) : r()));
  rmSync(cwd, { recursive: true, force: true });
}

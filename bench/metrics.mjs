// What metrics cost: a page's latency with and without request recording, and a scrape against /healthz, same run.
// Usage: npm run bench -- metrics [rounds=20] [requests per round=200]
//
// In process (app.inject, no network, so the recording's share is as large as it gets) on the embedded
// database: one app records every request as production does, the other has recording switched off.
// Rounds alternate between the two, so drift on a shared machine hits both; figures are medians of rounds.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const rounds = Number(process.argv[2] ?? 20);
const perRound = Number(process.argv[3] ?? 200);
const dist = path.join(root, 'dist/src');
if (!existsSync(path.join(dist, 'main.js'))) {
  console.error('dist/ is missing: run "npm run build" first (npm run bench does).');
  process.exit(1);
}
const { loadConfig } = await import(path.join(dist, 'config.js'));
const { connectDatabase } = await import(path.join(dist, 'db/connect.js'));
const { migrateToLatest } = await import(path.join(dist, 'db/migrator.js'));
const { buildApp } = await import(path.join(dist, 'app.js'));

const dataDir = mkdtempSync(path.join(tmpdir(), 'archway-bench-metrics-'));
const token = 'bench-metrics-token-0123456789abcdef-0123456789';
const config = loadConfig(
  {
    ARCHWAY_DATA_DIR: dataDir,
    ARCHWAY_LOG_LEVEL: 'silent',
    ARCHWAY_METRICS_TOKEN: token,
    ARCHWAY_SESSION_SECRET: 'bench-session-secret-0123456789abcdef-0123456789',
    ARCHWAY_ENCRYPTION_KEY: '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff',
    ARCHWAY_PASSWORD_PEPPER: 'bench-password-pepper-0123456789abcdef-01234567',
  },
  root,
);
const database = await connectDatabase({ databaseUrl: null, dataDir });
await migrateToLatest(database.db);
const recording = await buildApp({ config, database });
const silent = await buildApp({ config, database });
// The one difference between the two apps.
silent.ctx.metrics.recordRequest = () => undefined;
await Promise.all([recording.ready(), silent.ready()]);

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
/** Mean microseconds per request over one round of sequential requests. */
async function round(app, url, headers = {}, count = perRound) {
  const start = process.hrtime.bigint();
  for (let i = 0; i < count; i++) {
    const answer = await app.inject({ method: 'GET', url, headers });
    if (answer.statusCode !== 200) throw new Error(`${url} answered ${answer.statusCode}`);
  }
  return Number(process.hrtime.bigint() - start) / 1e3 / count;
}

const on = [];
const off = [];
const scrape = [];
const healthz = [];
const scrapeHeaders = { authorization: `Bearer ${token}` };
await round(recording, '/sign-in');
await round(silent, '/sign-in');
for (let r = 0; r < rounds; r++) {
  on.push(await round(recording, '/sign-in'));
  off.push(await round(silent, '/sign-in'));
  scrape.push(await round(recording, '/metrics', scrapeHeaders, 10));
  healthz.push(await round(recording, '/healthz', {}, 10));
}
const fmt = (x) => x.toFixed(0);
console.log(`${rounds} rounds; GET /sign-in x ${perRound} per round and app; /metrics and /healthz x 10 per round`);
console.log(
  `GET /sign-in  recording ${fmt(median(on))} µs, not recording ${fmt(median(off))} µs: ratio ${(median(on) / median(off)).toFixed(3)}`,
);
console.log(
  `GET /metrics  ${fmt(median(scrape))} µs, GET /healthz ${fmt(median(healthz))} µs: ratio ${(median(scrape) / median(healthz)).toFixed(1)}`,
);

await silent.close();
await recording.close();
rmSync(dataDir, { recursive: true, force: true });

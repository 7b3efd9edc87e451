// Download throughput of a 1 GiB archive through the secure_link location vs a plain static location of the same nginx.
//
// Usage: npm run build && node bench/download.mjs [--size-mib 1024] [--rounds 8]
// Needs root (it starts a private sshd, sudo rule, test user and nginx on loopback, like the tests).
// The archive is built by the real dispatcher and the link issued over SSH through the gate; then
// the same file is fetched alternately through /dl/ (secure_link, IP binding, symlink, attachment
// headers) and /static/ (plain alias, sendfile). `watch` is not running, so the link is not
// consumed and can be fetched repeatedly within its TTL: this measures nginx's path, not watch.
import { randomBytes } from 'node:crypto';
import { spawn, spawnSync } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';

const repo = fileURLToPath(new URL('..', import.meta.url));
const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const SIZE_MIB = opt('size-mib', 1024);
const ROUNDS = opt('rounds', 8);
const TARGET = 0.95;

/** Bundles the TypeScript test fixture into dist/bench/ so this plain script can use it. */
async function loadFixture() {
  const outfile = join(repo, 'dist', 'bench', 'backup-host-fixture.mjs');
  await build({
    entryPoints: [join(repo, 'test', 'backup-host', 'fixture.ts')],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    logLevel: 'error',
  });
  return import(pathToFileURL(outfile).href);
}

/** curl is the leaner client (less CPU taken from nginx on a small machine); node:http otherwise. */
const CURL = spawnSync('curl', ['--version'], { stdio: 'ignore' }).status === 0 ? 'curl' : null;

function fetchWithCurl(url, localAddress) {
  return new Promise((resolve, reject) => {
    const child = spawn(
      CURL,
      ['-s', '-o', '/dev/null', '--interface', localAddress, '-w', '%{http_code} %{size_download} %{time_total}', url],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('close', () => {
      const [status, bytes, seconds] = out.trim().split(' ').map(Number);
      resolve({ status, bytes, seconds });
    });
  });
}

function fetchAll(url, localAddress) {
  if (CURL) return fetchWithCurl(url, localAddress);
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const req = request(url, { localAddress, agent: false }, (res) => {
      let bytes = 0;
      res.on('data', (c) => (bytes += c.length));
      res.on('end', () => resolve({ status: res.statusCode, bytes, seconds: Number(process.hrtime.bigint() - started) / 1e9 }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

async function writeRandomFile(path, mib) {
  const out = createWriteStream(path);
  const block = randomBytes(1024 * 1024);
  for (let i = 0; i < mib; i++) {
    // Vary each MiB a little so nothing along the way can deduplicate or compress it.
    block.writeUInt32LE(i, 0);
    if (!out.write(block)) await new Promise((r) => out.once('drain', r));
  }
  await new Promise((r, j) => out.end((e) => (e ? j(e) : r())));
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const { startBackupHost } = await loadFixture();
const { backupHostFromSettings } = await import(pathToFileURL(join(repo, 'dist', 'src', 'backup-host', 'index.js')).href);
const { hashToken, newToken } = await import(pathToFileURL(join(repo, 'dist', 'src', 'protocol', 'index.js')).href);

const host = await startBackupHost({
  linkTtlSeconds: 3600,
  extraNginxConfig: ({ base }) =>
    `location /static/ { alias ${join(base, 'archives')}/; sendfile on; tcp_nopush on; sendfile_max_chunk 2m; }`,
});
try {
  const customer = 'bench.example.net';
  const snapshotDir = join(host.backupRoot, customer, 'daily.0');
  await mkdir(snapshotDir, { recursive: true });
  process.stdout.write(`writing a ${SIZE_MIB} MiB snapshot... `);
  await writeRandomFile(join(snapshotDir, 'data.bin'), SIZE_MIB);
  const client = backupHostFromSettings(host.portalSettings);
  process.stdout.write('building the archive with the dispatcher... ');
  const t0 = Date.now();
  const { archiveId } = await client.createArchive({ customer, snapshot: 'daily.0' });
  let status;
  for (;;) {
    status = await client.archiveStatus({ customer, archiveId });
    if (status.state !== 'building') break;
    await new Promise((r) => setTimeout(r, 200));
  }
  if (status.state !== 'ready') throw new Error(`archive ${status.state}: ${status.failureReason}`);
  console.log(`ready in ${((Date.now() - t0) / 1000).toFixed(1)} s (${(status.sizeBytes / 2 ** 20).toFixed(0)} MiB)`);

  const token = newToken();
  await client.armArchive({ customer, archiveId, tokenHash: hashToken(token) });
  const link = await client.issueLink({ customer, archiveId, token, clientIp: '127.0.0.2' });
  const staticUrl = `${host.nginx.baseUrl}/static/${archiveId}.tar`;

  // Warm the page cache and both code paths once, then alternate so drift hits both equally.
  for (const url of [link.url, staticUrl]) {
    const r = await fetchAll(url, '127.0.0.2');
    if (r.status !== 200 || r.bytes !== status.sizeBytes)
      throw new Error(`warm-up fetch of ${url.includes('/dl/') ? '/dl/' : '/static/'} got ${r.status}, ${r.bytes} bytes`);
  }
  const secure = [];
  const plain = [];
  for (let i = 0; i < ROUNDS; i++) {
    // Swap who goes first each round, so neither side always gets the warmer start.
    const pair = [
      [link.url, secure],
      [staticUrl, plain],
    ];
    for (const [url, into] of i % 2 === 0 ? pair : pair.reverse()) {
      const r = await fetchAll(url, '127.0.0.2');
      if (r.status !== 200 || r.bytes !== status.sizeBytes) throw new Error(`fetch got ${r.status}, ${r.bytes} bytes`);
      into.push(r.bytes / r.seconds / 2 ** 20);
    }
  }
  const s = median(secure);
  const p = median(plain);
  const ratio = s / p;
  console.log(
    `archive: ${(status.sizeBytes / 2 ** 30).toFixed(2)} GiB, ${ROUNDS} rounds each, client (${CURL ? 'curl' : 'node:http'}) and nginx on loopback (http, sendfile)`,
  );
  console.log(`secure_link /dl/: median ${s.toFixed(0)} MiB/s  (runs: ${secure.map((x) => x.toFixed(0)).join(', ')})`);
  console.log(`plain /static/:   median ${p.toFixed(0)} MiB/s  (runs: ${plain.map((x) => x.toFixed(0)).join(', ')})`);
  console.log(`ratio secure/plain: ${ratio.toFixed(3)}x  (target >= ${TARGET}x: ${ratio >= TARGET ? 'met' : 'NOT met'})`);
  process.exitCode = ratio >= TARGET ? 0 : 1;
} finally {
  await host.stop();
}

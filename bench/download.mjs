// Download throughput of a 1 GiB archive through the secure_link location vs a plain static location of the same nginx.
//
// Usage: npm run build && node bench/download.mjs [--size-mib 1024] [--rounds 8]
// Needs root (it starts a private sshd, sudo rule, test user and nginx on loopback, like the tests).
// The archive is built by the real dispatcher and the link issued over SSH through the gate; then
// the same file is fetched alternately through /dl/ (secure_link, IP binding, symlink, attachment
// headers) and /static/ (plain alias, sendfile). `watch` is not running, so the link is not
// consumed and can be fetched repeatedly within its TTL: this measures nginx's path, not watch.
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { FETCH_CLIENT, fetchFrom } from './lib/fetch.mjs';
import { loadHarness, option, repo } from './lib/harness.mjs';

const SIZE_MIB = option('size-mib', 1024);
const ROUNDS = option('rounds', 8);
const TARGET = 0.95;

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

const { startBackupHost } = await loadHarness('backup-host-fixture', ["export { startBackupHost } from './test/backup-host/fixture.ts';"]);
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
    const r = await fetchFrom(url, '127.0.0.2');
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
      const r = await fetchFrom(url, '127.0.0.2');
      if (r.status !== 200 || r.bytes !== status.sizeBytes) throw new Error(`fetch got ${r.status}, ${r.bytes} bytes`);
      into.push(r.bytes / r.seconds / 2 ** 20);
    }
  }
  const s = median(secure);
  const p = median(plain);
  const ratio = s / p;
  console.log(
    `archive: ${(status.sizeBytes / 2 ** 30).toFixed(2)} GiB, ${ROUNDS} rounds each, client (${FETCH_CLIENT}) and nginx on loopback (http, sendfile)`,
  );
  console.log(`secure_link /dl/: median ${s.toFixed(0)} MiB/s  (runs: ${secure.map((x) => x.toFixed(0)).join(', ')})`);
  console.log(`plain /static/:   median ${p.toFixed(0)} MiB/s  (runs: ${plain.map((x) => x.toFixed(0)).join(', ')})`);
  console.log(`ratio secure/plain: ${ratio.toFixed(3)}x  (target >= ${TARGET}x: ${ratio >= TARGET ? 'met' : 'NOT met'})`);
  process.exitCode = ratio >= TARGET ? 0 : 1;
} finally {
  await host.stop();
}

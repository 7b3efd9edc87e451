// Download throughput of a 1 GiB archive through the secure_link location vs a plain static location of the same nginx.
//
// Usage: npm run build && node bench/download.mjs [--size-mib 1024] [--rounds 8]
// Needs root (it starts a private sshd, sudo rule, test user and nginx on loopback, like the tests).
// The archive is built by the real dispatcher and the link issued over SSH through the gate; then
// the same file is fetched alternately through /dl/ (secure_link, IP binding, symlink, attachment
// headers) and /static/ (plain alias, sendfile). `watch` is not running, so the link is not
// consumed and can be fetched repeatedly within its TTL: this measures nginx's path, not watch.
import { join } from 'node:path';
import { FETCH_CLIENT, fetchFrom } from './lib/fetch.mjs';
import { loadHarness, option } from './lib/harness.mjs';
import { signedArchive } from './lib/signed-archive.mjs';

const SIZE_MIB = option('size-mib', 1024);
const ROUNDS = option('rounds', 8);
const TARGET = 0.95;

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const { startBackupHost } = await loadHarness('backup-host-fixture', ["export { startBackupHost } from './test/backup-host/fixture.ts';"]);

const host = await startBackupHost({
  linkTtlSeconds: 3600,
  extraNginxConfig: ({ base }) =>
    `location /static/ { alias ${join(base, 'archives')}/; sendfile on; tcp_nopush on; sendfile_max_chunk 2m; }`,
});
try {
  const archive = await signedArchive(host, SIZE_MIB);
  const staticUrl = `${host.nginx.baseUrl}/static/${archive.archiveId}.tar`;

  // Warm the page cache and both code paths once, then alternate so drift hits both equally.
  for (const url of [archive.url, staticUrl]) {
    const r = await fetchFrom(url, '127.0.0.2');
    if (r.status !== 200 || r.bytes !== archive.sizeBytes)
      throw new Error(`warm-up fetch of ${url.includes('/dl/') ? '/dl/' : '/static/'} got ${r.status}, ${r.bytes} bytes`);
  }
  const secure = [];
  const plain = [];
  for (let i = 0; i < ROUNDS; i++) {
    // Swap who goes first each round, so neither side always gets the warmer start.
    const pair = [
      [archive.url, secure],
      [staticUrl, plain],
    ];
    for (const [url, into] of i % 2 === 0 ? pair : pair.reverse()) {
      const r = await fetchFrom(url, '127.0.0.2');
      if (r.status !== 200 || r.bytes !== archive.sizeBytes) throw new Error(`fetch got ${r.status}, ${r.bytes} bytes`);
      into.push(r.bytes / r.seconds / 2 ** 20);
    }
  }
  const s = median(secure);
  const p = median(plain);
  const ratio = s / p;
  console.log(
    `archive: ${(archive.sizeBytes / 2 ** 30).toFixed(2)} GiB, ${ROUNDS} rounds each, client (${FETCH_CLIENT}) and nginx on loopback (http, sendfile)`,
  );
  console.log(`secure_link /dl/: median ${s.toFixed(0)} MiB/s  (runs: ${secure.map((x) => x.toFixed(0)).join(', ')})`);
  console.log(`plain /static/:   median ${p.toFixed(0)} MiB/s  (runs: ${plain.map((x) => x.toFixed(0)).join(', ')})`);
  console.log(`ratio secure/plain: ${ratio.toFixed(3)}x  (target >= ${TARGET}x: ${ratio >= TARGET ? 'met' : 'NOT met'})`);
  process.exitCode = ratio >= TARGET ? 0 : 1;
} finally {
  await host.stop();
}

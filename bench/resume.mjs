// Throughput of a resumed download (a Range for the second half) against a whole download of the same archive through the same nginx.
//
// Usage: npm run build && node bench/resume.mjs [--size-mib 512] [--rounds 6]
// Needs root (it starts a private sshd, sudo rule, test user and nginx on loopback, like the tests).
// The archive is built by the real dispatcher and the link issued over SSH through the gate; then the
// same signed link is fetched alternately whole (200) and from the middle (Range: bytes=<half>-, 206),
// as `curl -C -` resumes it. `watch` is not running, so the link is not consumed and can be fetched
// repeatedly within its TTL: this measures nginx's range path, not watch.
import { FETCH_CLIENT, fetchFrom } from './lib/fetch.mjs';
import { loadHarness, option } from './lib/harness.mjs';
import { signedArchive } from './lib/signed-archive.mjs';

const SIZE_MIB = option('size-mib', 512);
const ROUNDS = option('rounds', 6);
const TARGET = 0.95;

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const { startBackupHost } = await loadHarness('backup-host-fixture', ["export { startBackupHost } from './test/backup-host/fixture.ts';"]);

const host = await startBackupHost({ linkTtlSeconds: 3600 });
try {
  const archive = await signedArchive(host, SIZE_MIB);
  const size = archive.sizeBytes;
  const half = Math.floor(size / 2);
  const expect = { 0: [200, size], [half]: [206, size - half] };
  const fetchChecked = async (from) => {
    const r = await fetchFrom(archive.url, '127.0.0.2', from);
    const [wantStatus, wantBytes] = expect[from];
    if (r.status !== wantStatus || r.bytes !== wantBytes) throw new Error(`fetch from ${from} got ${r.status}, ${r.bytes} bytes`);
    return r.bytes / r.seconds / 2 ** 20;
  };

  // Warm the page cache and both code paths once, then alternate so drift hits both equally.
  for (const from of [0, half]) await fetchChecked(from);
  const whole = [];
  const resumed = [];
  for (let i = 0; i < ROUNDS; i++) {
    // Swap who goes first each round, so neither side always gets the warmer start.
    const pair = [
      [0, whole],
      [half, resumed],
    ];
    for (const [from, into] of i % 2 === 0 ? pair : pair.reverse()) into.push(await fetchChecked(from));
  }
  const w = median(whole);
  const r = median(resumed);
  const ratio = r / w;
  console.log(
    `archive: ${(size / 2 ** 30).toFixed(2)} GiB, ${ROUNDS} rounds each, client (${FETCH_CLIENT}) and nginx on loopback (http, sendfile)`,
  );
  console.log(`whole (200):              median ${w.toFixed(0)} MiB/s  (runs: ${whole.map((x) => x.toFixed(0)).join(', ')})`);
  console.log(`resumed second half (206): median ${r.toFixed(0)} MiB/s  (runs: ${resumed.map((x) => x.toFixed(0)).join(', ')})`);
  console.log(`ratio resumed/whole: ${ratio.toFixed(3)}x  (target >= ${TARGET}x: ${ratio >= TARGET ? 'met' : 'NOT met'})`);
  process.exitCode = ratio >= TARGET ? 0 : 1;
} finally {
  await host.stop();
}

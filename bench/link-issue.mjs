// Round-trip time of link.issue over SSH as the portal makes it: connect, pin the host key, exec, sudo, dispatcher, answer.
//
// Usage: npm run build && node bench/link-issue.mjs [--calls 200]
// Needs root (it starts a private sshd, sudo rule and test user on loopback, like the tests).
// Each call is a fresh SSH connection, exactly what the portal's client does per call.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { loadHarness, option, percentile, repo } from './lib/harness.mjs';

const CALLS = option('calls', 200);

function summary(times) {
  const mean = times.reduce((a, b) => a + b, 0) / times.length;
  return `p50 ${percentile(times, 50).toFixed(1)} ms  p90 ${percentile(times, 90).toFixed(1)} ms  p99 ${percentile(times, 99).toFixed(1)} ms  max ${Math.max(...times).toFixed(1)} ms  mean ${mean.toFixed(1)} ms`;
}

const { startBackupHost } = await loadHarness('backup-host-fixture', ["export { startBackupHost } from './test/backup-host/fixture.ts';"]);
const { backupHostFromSettings } = await import(pathToFileURL(join(repo, 'dist', 'src', 'backup-host', 'index.js')).href);
const { hashToken, newToken } = await import(pathToFileURL(join(repo, 'dist', 'src', 'protocol', 'index.js')).href);

const host = await startBackupHost({ withNginx: false, linkTtlSeconds: 3600 });
try {
  const customer = 'bench.example.net';
  const dir = join(host.backupRoot, customer, 'daily.0');
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'file.txt'), 'hello\n');
  const client = backupHostFromSettings(host.portalSettings);
  const { archiveId } = await client.createArchive({ customer, snapshot: 'daily.0' });
  for (;;) {
    const s = await client.archiveStatus({ customer, archiveId });
    if (s.state === 'ready') break;
    if (s.state !== 'building') throw new Error(`archive ${s.state}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const token = newToken();
  await client.armArchive({ customer, archiveId, tokenHash: hashToken(token) });

  const times = [];
  const started = Date.now();
  for (let n = 0; n < CALLS; n++) {
    const t = process.hrtime.bigint();
    await client.issueLink({ customer, archiveId, token, clientIp: '203.0.113.7' });
    times.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  const wall = (Date.now() - started) / 1000;
  console.log(
    `link.issue over SSH (new connection per call, ed25519, pinned host key, gate + sudo + dispatcher), ${CALLS} sequential calls`,
  );
  console.log(`${summary(times)}  (${(CALLS / wall).toFixed(1)} calls/s)`);

  // For scale: the same call with the dispatcher spawned locally (no SSH, no sudo): node start-up
  // plus the action itself, i.e. the part of the round trip that is not transport.
  const local = backupHostFromSettings({ localDispatcherConfig: host.dispatcherConfigPath, localDispatcherPath: host.dispatcherPath });
  const localTimes = [];
  for (let n = 0; n < Math.min(CALLS, 50); n++) {
    const t = process.hrtime.bigint();
    await local.issueLink({ customer, archiveId, token, clientIp: '203.0.113.7' });
    localTimes.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  console.log(`same call, dispatcher spawned locally (no SSH, no sudo), ${localTimes.length} calls`);
  console.log(summary(localTimes));
} finally {
  await host.stop();
}

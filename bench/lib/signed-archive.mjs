// Gives the download benches one archive of random data on a backup-host fixture and its signed link for 127.0.0.2.
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { repo } from './harness.mjs';

const { backupHostFromSettings } = await import(pathToFileURL(join(repo, 'dist', 'src', 'backup-host', 'index.js')).href);
const { hashToken, newToken } = await import(pathToFileURL(join(repo, 'dist', 'src', 'protocol', 'index.js')).href);

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

/** Writes a `mib` MiB snapshot, has the dispatcher build it, arms it and issues its link; returns { archiveId, sizeBytes, url }. */
export async function signedArchive(host, mib) {
  const customer = 'bench.example.net';
  const snapshotDir = join(host.backupRoot, customer, 'daily.0');
  await mkdir(snapshotDir, { recursive: true });
  process.stdout.write(`writing a ${mib} MiB snapshot... `);
  await writeRandomFile(join(snapshotDir, 'data.bin'), mib);
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
  return { archiveId, sizeBytes: status.sizeBytes, url: link.url };
}

// Download throughput of the first-look download server against the real NGINX (shipped vhost), same 1 GiB archive, same run.
//
// Usage: npm run bench -- first-look-download [--size-mib 1024] [--rounds 5]
// Needs root (the private nginx's master runs as root, its workers as www-data, as in the tests).
// Both servers serve one link root, one secret and one sparse archive (no disk noise: this compares
// the servers, not the disk); curl fetches the same signed link from each in turn, from 127.0.0.2.
import { chmod, chown, mkdir, mkdtemp, rm, symlink, truncate, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import { FETCH_CLIENT, fetchFrom } from './lib/fetch.mjs';
import { loadHarness, option, repo } from './lib/harness.mjs';

const SIZE = option('size-mib', 1024) * 2 ** 20;
const ROUNDS = option('rounds', 5);
const CLIENT = '127.0.0.2';
const FILE = 'bench.example.net-daily.0-0123abcd.tar';

/** Fetches the whole archive from 127.0.0.2; anything but all of it stops the bench. Resolves MiB/s. */
async function download(url) {
  const { status, bytes, seconds } = await fetchFrom(url, CLIENT);
  if (status !== 200 || bytes !== SIZE) throw new Error(`${url.split('?')[0]}: ${status}, ${bytes} bytes`);
  return bytes / seconds / 2 ** 20;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

if (process.getuid?.() !== 0) {
  console.error('first-look-download needs root: the private nginx runs its master as root and its workers as www-data.');
  process.exit(1);
}
if (FETCH_CLIENT !== 'curl') {
  // A node:http client would share this process's event loop with the first-look server it measures.
  console.error('first-look-download needs curl: the client must not run in the process of the server it measures.');
  process.exit(1);
}
const { startNginx } = await loadHarness('nginx-harness', ["export { startNginx } from './test/harness/nginx.ts';"]);
const { startDownloadServer } = await import(pathToFileURL(join(repo, 'dist', 'src', 'first-look', 'download-server.js')).href);
const { secureLinkMd5 } = await import(pathToFileURL(join(repo, 'dist', 'src', 'protocol', 'index.js')).href);

const wwwData = Number(execFileSync('getent', ['group', 'www-data'], { encoding: 'utf8' }).split(':')[2]);
const base = await mkdtemp(join(tmpdir(), 'archway-bench-fl-dl-'));
let nginx;
let firstLook;
try {
  await chmod(base, 0o755);
  const archiveRoot = join(base, 'archives');
  const linkRoot = join(base, 'links');
  const dir = randomBytes(16).toString('hex');
  for (const d of [archiveRoot, linkRoot, join(linkRoot, dir)]) {
    await mkdir(d);
    await chown(d, 0, wwwData);
    await chmod(d, 0o750);
  }
  const archive = join(archiveRoot, 'archive.tar');
  await writeFile(archive, '');
  await truncate(archive, SIZE);
  await chown(archive, 0, wwwData);
  await chmod(archive, 0o640);
  await symlink(archive, join(linkRoot, dir, FILE));
  const secret = randomBytes(32).toString('base64url');
  const secretFile = join(base, 'secret');
  await writeFile(secretFile, `${secret}\n`, { mode: 0o600 });

  nginx = await startNginx({ dir: join(base, 'nginx'), linkRoot, secret, downloadLog: join(base, 'nginx-download.log') });
  firstLook = await startDownloadServer({
    host: '127.0.0.1',
    port: 0,
    linkRoot,
    secureLinkSecretFile: secretFile,
    accessLog: join(base, 'first-look-download.log'),
  });
  // One link for the whole run (nobody runs `watch`, so it is not consumed); valid for an hour.
  const uri = `/dl/${dir}/${FILE}`;
  const expires = Math.floor(Date.now() / 1000) + 3600;
  const query = `?md5=${secureLinkMd5(expires, uri, CLIENT, secret)}&expires=${expires}`;
  const urls = { nginx: `${nginx.baseUrl}${uri}${query}`, firstLook: `${firstLook.url}${uri}${query}` };

  const rssBefore = process.memoryUsage().rss;
  let rssPeak = rssBefore;
  const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, process.memoryUsage().rss)), 50);
  const load0 = loadavg();
  // Warm both paths (page cache, JIT) once, then alternate who goes first so drift hits both alike.
  await download(urls.nginx);
  await download(urls.firstLook);
  const runs = { nginx: [], firstLook: [] };
  for (let i = 0; i < ROUNDS; i++) {
    const order = i % 2 === 0 ? ['nginx', 'firstLook'] : ['firstLook', 'nginx'];
    for (const name of order) runs[name].push(await download(urls[name]));
  }
  clearInterval(sampler);
  const load1 = loadavg();
  const n = median(runs.nginx);
  const f = median(runs.firstLook);
  console.log(
    `archive: ${(SIZE / 2 ** 30).toFixed(2)} GiB (sparse), ${ROUNDS} rounds each after one warm-up; curl and both servers on loopback (http)`,
  );
  console.log(`load average before ${load0.map((l) => l.toFixed(2)).join(' ')}, after ${load1.map((l) => l.toFixed(2)).join(' ')}`);
  console.log(`nginx (shipped vhost, sendfile): median ${n.toFixed(0)} MiB/s  (runs: ${runs.nginx.map((x) => x.toFixed(0)).join(', ')})`);
  console.log(
    `first-look server (node:http):   median ${f.toFixed(0)} MiB/s  (runs: ${runs.firstLook.map((x) => x.toFixed(0)).join(', ')})`,
  );
  console.log(`ratio first-look/nginx: ${(f / n).toFixed(3)}x`);
  console.log(
    `first-look server RSS (this process): ${(rssBefore / 2 ** 20).toFixed(0)} MiB before, ${(rssPeak / 2 ** 20).toFixed(0)} MiB peak`,
  );
} finally {
  await firstLook?.close();
  await nginx?.stop();
  await rm(base, { recursive: true, force: true });
}

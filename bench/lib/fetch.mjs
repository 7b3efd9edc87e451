// Fetches a URL to the end from a chosen local address for the throughput benches, timed by the client itself.
import { spawn, spawnSync } from 'node:child_process';
import { request } from 'node:http';

/** curl is the leaner client (less CPU taken from nginx on a small machine); node:http otherwise. */
export const FETCH_CLIENT = spawnSync('curl', ['--version'], { stdio: 'ignore' }).status === 0 ? 'curl' : 'node:http';

function fetchWithCurl(url, localAddress, from) {
  return new Promise((resolve, reject) => {
    const range = from === 0 ? [] : ['-r', `${from}-`];
    const child = spawn(
      'curl',
      ['-s', '-o', '/dev/null', '--interface', localAddress, ...range, '-w', '%{http_code} %{size_download} %{time_total}', url],
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

/** Fetches the URL from byte `from` to the end (0: the whole file, no Range header); resolves { status, bytes, seconds }. */
export function fetchFrom(url, localAddress, from = 0) {
  if (FETCH_CLIENT === 'curl') return fetchWithCurl(url, localAddress, from);
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const headers = from === 0 ? {} : { Range: `bytes=${from}-` };
    const req = request(url, { localAddress, agent: false, headers }, (res) => {
      let bytes = 0;
      res.on('data', (c) => (bytes += c.length));
      res.on('end', () => resolve({ status: res.statusCode, bytes, seconds: Number(process.hrtime.bigint() - started) / 1e9 }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

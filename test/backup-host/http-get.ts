// A download client bound to a chosen loopback address, able to stop half-way like a dropped connection.
import { createHash } from 'node:crypto';
import { request } from 'node:http';

export interface Fetched {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  sha256: string;
  /** True when we cut the connection ourselves. */
  aborted: boolean;
}

export interface GetOptions {
  localAddress: string;
  method?: string;
  headers?: Record<string, string>;
  /** Cut the connection once this many body bytes arrived. */
  stopAfterBytes?: number;
  /** Do not keep the body in memory (large downloads): only count and hash it. */
  discardBody?: boolean;
  /** The request target sent as written (`..`, `%2F`), instead of the URL's normalised path. */
  rawPath?: string;
}

export function httpGet(url: string, options: GetOptions): Promise<Fetched & { bytes: number }> {
  return new Promise((resolve, reject) => {
    const target = { method: options.method ?? 'GET', localAddress: options.localAddress, headers: options.headers, agent: false as const };
    const req = request(url, options.rawPath === undefined ? target : { ...target, path: options.rawPath }, (res) => {
      const chunks: Buffer[] = [];
      const hash = createHash('sha256');
      let bytes = 0;
      let aborted = false;
      const done = (): void =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), sha256: hash.digest('hex'), aborted, bytes });
      res.on('data', (chunk: Buffer) => {
        if (aborted) return;
        bytes += chunk.length;
        hash.update(chunk);
        if (!options.discardBody) chunks.push(chunk);
        if (options.stopAfterBytes !== undefined && bytes >= options.stopAfterBytes) {
          aborted = true;
          res.destroy();
          req.destroy();
          done();
        }
      });
      res.on('end', () => {
        if (!aborted) done();
      });
      res.on('error', (err) => {
        if (!aborted) reject(err);
      });
    });
    req.on('error', (err) => reject(err));
    req.end();
  });
}

// A download client bound to a chosen loopback address, able to stop half-way like a dropped connection.
import { createHash } from 'node:crypto';
import { request, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';

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
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks),
          sha256: hash.digest('hex'),
          aborted,
          bytes,
        });
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

export interface TlsFetched {
  status: number;
  headers: IncomingHttpHeaders;
  /** Every header as sent, repeated ones included (rawHeaders), lower-cased names. */
  raw: Array<[string, string]>;
  body: string;
}

/** One HTTPS request to a private nginx on 127.0.0.1 (its self-signed certificate is not checked). */
export function httpsGet(
  port: number,
  path: string,
  options: { headers?: Record<string, string>; localAddress?: string; servername: string },
): Promise<TlsFetched> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port,
        path,
        localAddress: options.localAddress ?? '127.0.0.2',
        headers: options.headers,
        rejectUnauthorized: false,
        servername: options.servername,
        agent: false,
      },
      (res) => {
        let body = '';
        const raw: Array<[string, string]> = [];
        for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) raw.push([res.rawHeaders[i]!.toLowerCase(), res.rawHeaders[i + 1]!]);
        res.setEncoding('utf8').on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, raw, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

// The first-look download server: serves the dispatcher's signed links as the shipped NGINX downloads vhost does.
//
// It stands in for nginx/downloads.server.conf.in on a newcomer's computer, and a conformance test holds the
// two side by side (test/first-look/download-server-conformance.test.ts). What it copies, rule by rule:
// secure_link (403 wrong hash or address, 410 expired), limit_except GET, the friendly error pages,
// disable_symlinks if_not_owner from=LINK_ROOT, max_ranges 1 (one range: 206; several: the whole file), the headers,
// limit_conn archway_link 1 (429 while the same link is being served), and the archway_download log line
// for signed GETs, written when the response ends. HSTS is not sent: the vhost's value is empty over plain HTTP.
import { readFileSync } from 'node:fs';
import { appendFile, lstat, open, stat, type FileHandle } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { PROJECT_ROOT } from '../paths.js';
import { canonicalIp } from '../protocol/index.js';
import { conditionalStatus, isoTimeLikeNginx, nginxUri, rangeLikeNginx, requestTimeLikeNginx, secureLinkState } from './nginx-semantics.js';

export interface DownloadServerOptions {
  host: string;
  /** 0 = any free port. */
  port: number;
  linkRoot: string;
  /** First line is the secure_link secret, as for the dispatcher. */
  secureLinkSecretFile: string;
  /** The download log `dispatcher watch` follows (log_format archway_download). */
  accessLog: string;
  /** Where the error pages send the customer back to (the install's --portal-url). */
  portalUrl?: string;
}

export interface DownloadServer {
  port: number;
  url: string;
  close(): Promise<void>;
}

/** The vhost's download location: a 32-hex link directory and a file name, nothing else under LINK_ROOT. */
const LINK_LOCATION = /^\/dl\/([0-9a-f]{32})\/([A-Za-z0-9][A-Za-z0-9._-]{0,250}\.tar)$/;
const DEFAULT_PORTAL_URL = 'http://127.0.0.1:3000/backups';
const READ_CHUNK = 1 << 20;

type ErrorStatus = 403 | 404 | 410 | 429;

/** The download location's add_header lines (without `always`). */
const ATTACHMENT_HEADERS = (name: string) => ({
  'Content-Disposition': `attachment; filename="${name}"`,
  'X-Content-Type-Options': 'nosniff',
  'Cache-Control': 'private, no-store',
  'Referrer-Policy': 'no-referrer',
});
/** contentRange: the answer's Content-Range ($sent_http_content_range), "" when it has none. */
type Outcome = { status: number; bytes: number; completion: 'OK' | ''; contentRange: string };
type LogEntry = Outcome & { started: Date; remote: string; uri: string };

/**
 * The shipped error pages, rendered as the install script renders them, with its --portal-url check
 * (plus brackets, for a first look on an IPv6 loopback: http://[::1]:3000).
 */
export function renderDownloadErrorPages(portalUrl: string): Map<ErrorStatus, Buffer> {
  if (!/^https?:\/\/[A-Za-z0-9.:/_[\]-]+$/.test(portalUrl)) throw new Error('portal URL has characters that do not belong in a link');
  const pages = new Map<ErrorStatus, Buffer>();
  for (const status of [403, 404, 410, 429] as const) {
    const template = readFileSync(path.join(PROJECT_ROOT, 'nginx', 'errors', `${status}.html.in`), 'utf8');
    pages.set(status, Buffer.from(template.replaceAll('@@PORTAL_URL@@', portalUrl), 'utf8'));
  }
  return pages;
}

const BUILTIN_TITLES = {
  400: '400 Bad Request',
  412: '412 Precondition Failed',
  416: '416 Requested Range Not Satisfiable',
  500: '500 Internal Server Error',
} as const;
type BuiltinStatus = keyof typeof BUILTIN_TITLES;

/** NGINX's own page for a status it has no error_page for (server_tokens off). */
function builtinPage(status: BuiltinStatus): Buffer {
  const title = BUILTIN_TITLES[status];
  return Buffer.from(
    `<html>\r\n<head><title>${title}</title></head>\r\n<body>\r\n<center><h1>${title}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n`,
  );
}

function readSecret(file: string): string {
  const secret = readFileSync(file, 'utf8').split('\n')[0]?.trim() ?? '';
  if (secret.length < 16) throw new Error(`the secure_link secret in ${file} is shorter than 16 characters`);
  return secret;
}

/** $remote_addr: an IPv4 client of a dual-stack socket is written as IPv4, IPv6 as NGINX spells it. */
function remoteAddr(req: IncomingMessage): string {
  const raw = req.socket.remoteAddress ?? '';
  const v4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(raw);
  return v4 ? v4[1]! : (canonicalIp(raw) ?? raw);
}

type Opened = { handle: FileHandle; size: number; mtimeMs: number } | { status: 403 | 404 | 500 };

/** errno -> status as ngx_http_static_module maps a failed open. */
function openFailure(error: unknown): { status: 403 | 404 | 500 } {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ENAMETOOLONG') return { status: 404 };
  if (code === 'EACCES' || code === 'ELOOP') return { status: 403 };
  return { status: 500 };
}

/**
 * Opens LINK_ROOT/<dir>/<file> under `disable_symlinks if_not_owner from=LINK_ROOT`: each component below
 * the link root may be a symlink only when the link's owner owns what it points at (the dispatcher's
 * links to archives are); anything else is refused as NGINX refuses it (403).
 */
async function openLink(linkRoot: string, dir: string, file: string): Promise<Opened> {
  const dirPath = path.join(linkRoot, dir);
  const filePath = path.join(dirPath, file);
  let handle: FileHandle | undefined;
  try {
    const target = await stat(dirPath);
    if ((await lstat(dirPath)).uid !== target.uid) return { status: 403 };
    if (!target.isDirectory()) return { status: 404 };
    handle = await open(filePath, 'r');
    const opened = await handle.stat();
    if ((await lstat(filePath)).uid !== opened.uid || !opened.isFile()) {
      await handle.close();
      // A directory would get NGINX's 301 to "<uri>/" and then the catch-all 404; the dispatcher never makes one.
      return { status: opened.isFile() ? 403 : 404 };
    }
    return { handle, size: opened.size, mtimeMs: opened.mtimeMs };
  } catch (error) {
    await handle?.close();
    return openFailure(error);
  }
}

export async function startDownloadServer(options: DownloadServerOptions): Promise<DownloadServer> {
  const secret = readSecret(options.secureLinkSecretFile);
  const pages = renderDownloadErrorPages(options.portalUrl ?? DEFAULT_PORTAL_URL);
  const inFlight = new Set<Promise<void>>();
  /** limit_conn archway_link 1: the link directories a request is being served from. */
  const busyLinks = new Set<string>();
  let logWrites: Promise<void> = Promise.resolve();

  /** One line of `log_format archway_download escape=json`, appended in order, one write each. */
  const logDownload = (entry: LogEntry): void => {
    // $time_iso8601 is when the line is written (the end of the request), $request_time how long it took.
    const line =
      `{"time":${JSON.stringify(isoTimeLikeNginx(new Date()))},"remote_addr":${JSON.stringify(entry.remote)},` +
      `"uri":${JSON.stringify(entry.uri)},"status":${entry.status},"bytes":${entry.bytes},` +
      `"completion":"${entry.completion}","request_time":${requestTimeLikeNginx(Date.now() - entry.started.getTime())},` +
      `"content_range":${JSON.stringify(entry.contentRange)}}\n`;
    logWrites = logWrites
      .then(() => appendFile(options.accessLog, line, { mode: 0o640 }))
      .catch((error: unknown) => {
        // A lost line means a download is never recorded: say so where the operator looks.
        console.error(`first-look download server: cannot write ${options.accessLog}: ${String(error)}`);
      });
  };

  const sendPage = (req: IncomingMessage, res: ServerResponse, status: ErrorStatus): void => {
    const page = pages.get(status)!;
    res.writeHead(status, {
      'Content-Type': 'text/html; charset=utf-8',
      'Content-Length': page.length,
      'Cache-Control': 'no-store',
      'X-Content-Type-Options': 'nosniff',
    });
    res.end(req.method === 'HEAD' ? undefined : page);
  };

  /** Returns the body bytes sent, for the log. */
  const sendBuiltin = (req: IncomingMessage, res: ServerResponse, status: BuiltinStatus, extra: Record<string, string> = {}): number => {
    const page = builtinPage(status);
    res.writeHead(status, {
      'Content-Type': 'text/html',
      'Content-Length': page.length,
      ...(status === 400 ? { Connection: 'close' } : {}),
      ...extra,
    });
    res.end(req.method === 'HEAD' ? undefined : page);
    return req.method === 'HEAD' ? 0 : page.length;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const started = new Date();
    // An absolute-form target (`GET http://host/path`) names the path after its authority, as for NGINX.
    const raw = req.url ?? '/';
    const authority = /^https?:\/\/[^/?]*/i.exec(raw)?.[0];
    const target = authority === undefined ? raw : `/${raw.slice(authority.length).replace(/^\//, '')}`;
    const q = target.indexOf('?');
    const uri = nginxUri(q === -1 ? target : target.slice(0, q));
    if (uri === null) {
      sendBuiltin(req, res, 400);
      return;
    }
    const link = LINK_LOCATION.exec(uri);
    if (!link) return sendPage(req, res, 404);

    // limit_except swaps in its own location config, without the secure_link `if`s (the rewrite phase), so any
    // other method meets only limit_conn (preaccess) and then the deny (access): 429 if the link is busy, else 403.
    const other = req.method !== 'GET' && req.method !== 'HEAD';
    const remote = remoteAddr(req);
    if (!other) {
      const signature = secureLinkState(q === -1 ? '' : target.slice(q + 1), uri, remote, secret, Math.floor(started.getTime() / 1000));
      if (signature === '') return sendPage(req, res, 403);
      if (signature === '0') return sendPage(req, res, 410);
    }
    // The 429 goes through error_page into another location too, so it never reaches the download log.
    if (busyLinks.has(link[1]!)) return sendPage(req, res, 429);
    if (other) return sendPage(req, res, 403);
    busyLinks.add(link[1]!);
    // Free again once the answer is sent (as NGINX's limit_conn, at the request's end), not after the
    // file is closed: a client that asks again on reading the answer must not meet its own 429.
    // Also before the log line is written: whoever reads the line may fetch the link again at once.
    const release = () => busyLinks.delete(link[1]!);
    res.once('finish', release).once('close', release);
    const entry = await serveLink(req, res, link[1]!, link[2]!).finally(release);
    // Only signed GETs reach the download log (map $archway_signed): a HEAD transfers nothing.
    if (entry && req.method === 'GET') logDownload({ started, remote, uri, ...entry });
  };

  /** Sends the linked archive; returns what the download log says about it, if anything. */
  const serveLink = async (req: IncomingMessage, res: ServerResponse, dir: string, name: string): Promise<Outcome | undefined> => {
    const opened = await openLink(options.linkRoot, dir, name);
    if ('status' in opened) {
      // 403 and 404 go through error_page into another location, whose log is not the download log.
      if (opened.status !== 500) {
        sendPage(req, res, opened.status);
        return undefined;
      }
      return { status: 500, bytes: sendBuiltin(req, res, 500), completion: 'OK', contentRange: '' };
    }
    const { handle: file, size, mtimeMs } = opened;
    try {
      const lastModified = Math.floor(mtimeMs / 1000);
      const etag = `"${lastModified.toString(16)}-${size.toString(16)}"`;
      const status = conditionalStatus(req.headers, etag, lastModified);
      if (status === 412) {
        // NGINX ends this one from inside its header filter, which leaves $request_completion empty.
        return { status, bytes: sendBuiltin(req, res, 412), completion: '', contentRange: '' };
      }
      // The range filter runs after the conditional one, on a 200 only.
      const range = status === 200 ? rangeLikeNginx(req.headers, size, etag, lastModified) : null;
      if (range?.kind === 'unsatisfiable') {
        const contentRange = `bytes */${size}`;
        // The location's add_header lines apply to NGINX's own 416 page too.
        const bytes = sendBuiltin(req, res, 416, { 'Content-Range': contentRange, ...ATTACHMENT_HEADERS(name) });
        return { status: 416, bytes, completion: 'OK', contentRange };
      }
      const [start, end] = range?.kind === 'range' ? [range.start, range.end] : [0, size];
      const partial = range?.kind === 'range';
      const contentRange = partial ? `bytes ${start}-${end - 1}/${size}` : '';
      // add_header (without `always`) applies to 200, 206 and 304; a 304 has no type or length.
      res.writeHead(partial ? 206 : status, {
        ...(status === 200 ? { 'Content-Type': 'application/x-tar', 'Content-Length': end - start } : {}),
        ...(partial ? { 'Content-Range': contentRange } : {}),
        'Last-Modified': new Date(lastModified * 1000).toUTCString(),
        ETag: etag,
        // Offered on a whole 200 only, as the range filter does.
        ...(range?.kind === 'whole' ? { 'Accept-Ranges': 'bytes' } : {}),
        ...ATTACHMENT_HEADERS(name),
      });
      const answered = partial ? 206 : status;
      if (status === 304 || req.method === 'HEAD') {
        res.end();
        return { status: answered, bytes: 0, completion: 'OK', contentRange };
      }
      let sent = 0;
      let completion: 'OK' | '' = 'OK';
      if (end > start) {
        const body = file.createReadStream({ start, end: end - 1, highWaterMark: READ_CHUNK, autoClose: false });
        body.on('data', (chunk: Buffer | string) => {
          sent += chunk.length;
        });
        // pipeline waits for the socket to take each chunk (back-pressure) and fails if the client goes away.
        await pipeline(body, res).catch(() => (completion = ''));
      } else {
        res.end();
      }
      if (sent !== end - start) {
        // The file shrank under us: cut the connection so the client sees a short download, as NGINX does.
        completion = '';
        res.destroy();
      }
      return { status: answered, bytes: sent, completion, contentRange };
    } finally {
      await file.close();
    }
  };

  const server = createServer((req, res) => {
    const done = handle(req, res)
      .catch((error: unknown) => {
        console.error(`first-look download server: ${String(error)}`);
        if (!res.headersSent) sendBuiltin(req, res, 500);
        else res.destroy();
      })
      .finally(() => inFlight.delete(done));
    inFlight.add(done);
  });
  // NGINX's send_timeout and keepalive_timeout: a client that stops reading is dropped after a minute.
  server.timeout = 60_000;
  server.keepAliveTimeout = 75_000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const hostInUrl = options.host.includes(':') ? `[${options.host}]` : options.host;
  return {
    port,
    url: `http://${hostInUrl}:${port}`,
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // Downloads in progress are cut, and logged as not complete, instead of holding the stop for minutes.
      server.closeAllConnections();
      await closed;
      await Promise.all([...inFlight]);
      await logWrites;
    },
  };
}

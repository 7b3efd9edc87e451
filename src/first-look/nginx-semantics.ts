// How NGINX reads a request for the downloads vhost: $uri, $arg_*, $secure_link, $time_iso8601, as its C code does.
import { timingSafeEqual } from 'node:crypto';
import { secureLinkMd5 } from '../protocol/index.js';

/**
 * NGINX's $uri from the raw request path: one pass of %XX decoding (a bad escape is a 400), then
 * merged slashes and resolved `.` and `..` segments, a decoded `%2F` counting as `/` (as in
 * ngx_http_parse_complex_uri). Null means NGINX answers 400 (bad escape, NUL, `..` above the root).
 */
export function nginxUri(rawPath: string): string | null {
  if (!rawPath.startsWith('/')) return null;
  const bytes: number[] = [];
  const raw = Buffer.from(rawPath, 'latin1');
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i]!;
    if (c !== 0x25) {
      bytes.push(c);
      continue;
    }
    const hex = rawPath.slice(i + 1, i + 3);
    if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return null;
    bytes.push(parseInt(hex, 16));
    i += 2;
  }
  if (bytes.includes(0)) return null;
  // The bytes are kept one char each: the location pattern is ASCII, anything else only has to not match.
  const decoded = Buffer.from(bytes).toString('latin1');
  const out: string[] = [];
  const segments = decoded.split('/');
  const trailing = segments.at(-1) === '' || segments.at(-1) === '.' || segments.at(-1) === '..';
  for (const segment of segments) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') {
      if (out.length === 0) return null;
      out.pop();
      continue;
    }
    out.push(segment);
  }
  return `/${out.join('/')}${trailing && out.length > 0 ? '/' : ''}`;
}

/** $arg_<name>: the first `name=` (case-insensitive) at the start or after `&`, raw, not decoded (ngx_http_arg). */
export function nginxArg(args: string, name: string): string {
  const lower = args.toLowerCase();
  const key = `${name.toLowerCase()}=`;
  for (let at = lower.indexOf(key); at !== -1; at = lower.indexOf(key, at + 1)) {
    if (at !== 0 && args[at - 1] !== '&') continue;
    const end = args.indexOf('&', at + key.length);
    return args.slice(at + key.length, end === -1 ? undefined : end);
  }
  return '';
}

const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** ngx_decode_base64url: stops at `=`, refuses other characters and a length of 4n+1; spare bits are ignored. */
function decodeBase64url(text: string): Buffer | null {
  let len = text.indexOf('=');
  if (len === -1) len = text.length;
  const values: number[] = [];
  for (let i = 0; i < len; i++) {
    const v = BASE64URL.indexOf(text[i]!);
    if (v === -1) return null;
    values.push(v);
  }
  if (len % 4 === 1) return null;
  const out: number[] = [];
  for (let i = 0; i + 1 < values.length; i += 4) {
    const [a, b, c, d] = [values[i]!, values[i + 1]!, values[i + 2], values[i + 3]];
    out.push(((a << 2) | (b >> 4)) & 0xff);
    if (c !== undefined) out.push(((b << 4) | (c >> 2)) & 0xff);
    if (d !== undefined && c !== undefined) out.push(((c << 6) | d) & 0xff);
  }
  return Buffer.from(out);
}

/** ngx_atotm: digits only, at least one, no overflow of a 64-bit time_t; anything else is -1. */
function parseExpires(text: string): number {
  if (!/^[0-9]+$/.test(text)) return -1;
  const value = BigInt(text);
  return value > 9223372036854775807n ? -1 : Number(value);
}

/**
 * $secure_link for `secure_link $arg_md5,$arg_expires` and
 * `secure_link_md5 "$secure_link_expires$uri$remote_addr <secret>"`:
 * '' = missing or wrong signature (or another address), '0' = expired, '1' = valid.
 */
export function secureLinkState(args: string, uri: string, remoteAddr: string, secret: string, nowSeconds: number): '' | '0' | '1' {
  const md5 = nginxArg(args, 'md5');
  const expiresText = nginxArg(args, 'expires');
  const expires = parseExpires(expiresText);
  if (expires <= 0 || md5.length > 24) return '';
  const given = decodeBase64url(md5);
  if (given === null || given.length !== 16) return '';
  // The signed text uses the expiry exactly as written in the URL ($secure_link_expires), leading zeros and all.
  const expected = Buffer.from(secureLinkMd5(expiresText, uri, remoteAddr, secret), 'base64url');
  if (!timingSafeEqual(given, expected)) return '';
  return expires < nowSeconds ? '0' : '1';
}

/** $time_iso8601: local time with its offset, to the second. */
export function isoTimeLikeNginx(date: Date): string {
  const pad = (n: number) => String(n).padStart(2, '0');
  const offset = -date.getTimezoneOffset();
  const sign = offset < 0 ? '-' : '+';
  const abs = Math.abs(offset);
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`
  );
}

/** $request_time: seconds with milliseconds ("%T.%03M"). */
export function requestTimeLikeNginx(ms: number): string {
  const whole = Math.max(0, Math.floor(ms));
  return `${Math.floor(whole / 1000)}.${String(whole % 1000).padStart(3, '0')}`;
}

/** ngx_http_test_if_match: `*`, or the entity tag in a comma-separated list (weak `W/` allowed for If-None-Match). */
function matchesEtag(header: string, etag: string, weak: boolean): boolean {
  if (header === '*') return true;
  let at = 0;
  while (at < header.length) {
    if (weak && header.startsWith('W/', at) && header.length - at > 2) at += 2;
    if (header.startsWith(etag, at)) {
      let end = at + etag.length;
      while (header[end] === ' ' || header[end] === '\t') end++;
      if (end === header.length || header[end] === ',') return true;
    }
    while (at < header.length && header[at] !== ',') at++;
    while (at < header.length && (header[at] === ' ' || header[at] === '\t' || header[at] === ',')) at++;
  }
  return false;
}

/** An HTTP date in seconds, or -1 when NGINX could not read it either. */
function httpTime(text: string): number {
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? -1 : Math.floor(ms / 1000);
}

/**
 * ngx_http_not_modified_filter for a 200 with this ETag and Last-Modified (`if_modified_since exact`):
 * 412 when If-Unmodified-Since or If-Match fails, 304 when the client's copy is current, else 200.
 */
export function conditionalStatus(
  headers: Readonly<Record<string, string | string[] | undefined>>,
  etag: string,
  lastModifiedSeconds: number,
): 200 | 304 | 412 {
  const one = (name: string) => {
    const v = headers[name];
    return Array.isArray(v) ? v[0] : v;
  };
  const ius = one('if-unmodified-since');
  if (ius !== undefined && !(httpTime(ius) >= lastModifiedSeconds)) return 412;
  const ifMatch = one('if-match');
  if (ifMatch !== undefined && !matchesEtag(ifMatch, etag, false)) return 412;
  const ims = one('if-modified-since');
  const inm = one('if-none-match');
  if (ims === undefined && inm === undefined) return 200;
  if (ims !== undefined && httpTime(ims) !== lastModifiedSeconds) return 200;
  if (inm !== undefined && !matchesEtag(inm, etag, true)) return 200;
  return 304;
}

/** What the range filter makes of a 200 answer: the whole body, one range [start, end), or 416. */
export type RangeAnswer = { kind: 'whole' } | { kind: 'range'; start: number; end: number } | { kind: 'unsatisfiable' };

const MAX_OFF_T = (1n << 63n) - 1n;

/**
 * ngx_http_range_header_filter with `max_ranges 1`, for a 200 of `size` bytes with this ETag and
 * Last-Modified: a Range other than `bytes=...`, a failed If-Range, or more than one range gets the
 * whole body; one satisfiable range gets 206; a garbled or wholly past-the-end one gets 416.
 */
export function rangeLikeNginx(
  headers: Readonly<Record<string, string | string[] | undefined>>,
  size: number,
  etag: string,
  lastModifiedSeconds: number,
): RangeAnswer {
  const one = (name: string) => {
    const v = headers[name];
    return Array.isArray(v) ? v[0] : v;
  };
  const range = one('range');
  if (range === undefined || range.length < 7 || range.slice(0, 6).toLowerCase() !== 'bytes=') return { kind: 'whole' };
  const ifRange = one('if-range');
  if (ifRange !== undefined) {
    if (ifRange.length >= 2 && ifRange.endsWith('"')) {
      if (ifRange !== etag) return { kind: 'whole' };
    } else if (httpTime(ifRange) !== lastModifiedSeconds) return { kind: 'whole' };
  }
  return parseRangeLikeNginx(range.slice(6), BigInt(size));
}

/** ngx_http_range_parse, character for character (the header value ends where NGINX's NUL would be). */
function parseRangeLikeNginx(text: string, length: bigint): RangeAnswer {
  let p = 0;
  const at = () => text[p] ?? '\0';
  const digit = () => at() >= '0' && at() <= '9';
  const skipSpaces = () => {
    while (at() === ' ') p++;
  };
  /** Reads digits; null when the number passes off_t's maximum (NGINX answers 416). */
  const number = (): bigint | null => {
    let n = 0n;
    while (digit()) {
      n = n * 10n + BigInt(at().charCodeAt(0) - 48);
      if (n > MAX_OFF_T) return null;
      p++;
    }
    return n;
  };
  let found: { start: bigint; end: bigint } | null = null;
  let total = 0n;
  for (;;) {
    let start = 0n;
    let end: bigint;
    let suffix = false;
    let open = false;
    skipSpaces();
    if (at() !== '-') {
      if (!digit()) return { kind: 'unsatisfiable' };
      const s = number();
      if (s === null) return { kind: 'unsatisfiable' };
      start = s;
      skipSpaces();
      if (text[p++] !== '-') return { kind: 'unsatisfiable' };
      skipSpaces();
      if (at() === ',' || at() === '\0') open = true;
    } else {
      suffix = true;
      p++;
    }
    if (open) {
      end = length;
    } else {
      if (!digit()) return { kind: 'unsatisfiable' };
      const e = number();
      if (e === null) return { kind: 'unsatisfiable' };
      end = e;
      skipSpaces();
      if (at() !== ',' && at() !== '\0') return { kind: 'unsatisfiable' };
      if (suffix) {
        start = end < length ? length - end : 0n;
        end = length - 1n;
      }
      end = end >= length ? length : end + 1n;
    }
    if (start < end) {
      // A second range is past max_ranges 1: NGINX declines and sends the whole body.
      if (found !== null) return { kind: 'whole' };
      found = { start, end };
      total += end - start;
    } else if (start === 0n) {
      return { kind: 'whole' };
    }
    if (text[p++] !== ',') break;
  }
  if (found === null) return { kind: 'unsatisfiable' };
  if (total > length) return { kind: 'whole' };
  return { kind: 'range', start: Number(found.start), end: Number(found.end) };
}

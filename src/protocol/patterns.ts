// Anchored patterns and checks for every field that crosses the SSH boundary.
import { isIP } from 'node:net';

// Installation domain, lowercase only so one customer has exactly one spelling (and one directory).
export const CUSTOMER_PATTERN = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/;
// rsnapshot (`daily.0`) and dated (`2026-11-21T03:00:00Z`) names; first char rules out `-` and `.`.
export const SNAPSHOT_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:+-]{0,127}$/;
export const ARCHIVE_ID_PATTERN = /^[0-9a-f]{32}$/;
export const TOKEN_HASH_PATTERN = /^[0-9a-f]{64}$/;
// 32 random bytes in base64url without padding are always 43 characters.
export const TOKEN_PATTERN = /^[A-Za-z0-9_-]{43}$/;
export const LINK_DIR_PATTERN = /^[0-9a-f]{32}$/;
// Only characters an address can have: refuses IPv6 zone ids (`%eth0`) that isIP accepts.
const IP_CHARS = /^[0-9A-Fa-f:.]{2,45}$/;

export function isCustomer(v: unknown): v is string {
  return typeof v === 'string' && CUSTOMER_PATTERN.test(v);
}

export function isSnapshotName(v: unknown): v is string {
  // The pattern already refuses a leading dot; the explicit check documents the intent.
  return typeof v === 'string' && SNAPSHOT_PATTERN.test(v) && v !== '.' && v !== '..';
}

export function isArchiveId(v: unknown): v is string {
  return typeof v === 'string' && ARCHIVE_ID_PATTERN.test(v);
}

export function isTokenHash(v: unknown): v is string {
  return typeof v === 'string' && TOKEN_HASH_PATTERN.test(v);
}

export function isToken(v: unknown): v is string {
  return typeof v === 'string' && TOKEN_PATTERN.test(v);
}

/**
 * Returns the address exactly as nginx writes `$remote_addr` (so the secure_link hash matches),
 * or null when the text is not one IPv4 dotted quad or one IPv6 address.
 */
export function canonicalIp(v: unknown): string | null {
  if (typeof v !== 'string' || !IP_CHARS.test(v)) return null;
  const family = isIP(v);
  if (family === 4) return v; // isIP already refuses leading zeros and out-of-range octets
  if (family !== 6) return null;
  const bytes = ipv6Bytes(v);
  return bytes === null ? null : formatIpv6LikeNginx(bytes);
}

function ipv6Bytes(text: string): Uint8Array | null {
  let head = text;
  let tailV4: number[] = [];
  const lastColon = text.lastIndexOf(':');
  if (text.includes('.')) {
    const v4 = text.slice(lastColon + 1);
    if (isIP(v4) !== 4) return null;
    tailV4 = v4.split('.').map(Number);
    head = text.slice(0, lastColon + 1) + '0:0';
  }
  const halves = head.split('::');
  if (halves.length > 2) return null;
  const left = halves[0] === '' ? [] : (halves[0] ?? '').split(':');
  const right = halves.length === 2 ? (halves[1] === '' ? [] : (halves[1] ?? '').split(':')) : [];
  const missing = 8 - left.length - right.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return null;
  const groups = [...left, ...Array<string>(halves.length === 2 ? missing : 0).fill('0'), ...right];
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    const g = groups[i] ?? '';
    if (!/^[0-9A-Fa-f]{1,4}$/.test(g)) return null;
    const n = parseInt(g, 16);
    out[i * 2] = n >> 8;
    out[i * 2 + 1] = n & 0xff;
  }
  if (tailV4.length === 4) out.set(tailV4, 12);
  return out;
}

// Mirrors ngx_inet6_ntop: longest run (>1 group, first wins) becomes `::`, lowercase hex, and
// IPv4-mapped/compatible addresses end in a dotted quad.
function formatIpv6LikeNginx(p: Uint8Array): string {
  let zero = -1;
  let last = -1;
  let max = 1;
  let n = 0;
  for (let i = 0; i < 16; i += 2) {
    if (p[i] || p[i + 1]) {
      if (max < n) {
        zero = last;
        max = n;
      }
      n = 0;
      continue;
    }
    if (n++ === 0) last = i;
  }
  if (max < n) {
    zero = last;
    max = n;
  }
  let end = 16;
  if (zero === 0) {
    if ((max === 5 && p[10] === 0xff && p[11] === 0xff) || max === 6 || (max === 7 && p[14] !== 0 && p[15] !== 1)) {
      end = 12;
    }
  }
  let s = zero === 0 ? ':' : '';
  for (let i = 0; i < end; i += 2) {
    if (i === zero) {
      s += ':';
      i += (max - 1) * 2;
      continue;
    }
    s += (((p[i] ?? 0) << 8) | (p[i + 1] ?? 0)).toString(16);
    if (i < 14) s += ':';
  }
  if (end === 12) s += `${p[12]}.${p[13]}.${p[14]}.${p[15]}`;
  return s;
}

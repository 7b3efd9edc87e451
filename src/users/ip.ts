// One written form for a client address, so the same client is one key in every table.
import { isIP } from 'node:net';

/** An IPv4 address written as IPv6 (`::ffff:192.0.2.1`, from a dual-stack socket) is the IPv4 address. */
export function normalizeIp(ip: string): string {
  const tail = ip.toLowerCase().startsWith('::ffff:') ? ip.slice(7) : null;
  return tail !== null && isIP(tail) === 4 ? tail : ip;
}

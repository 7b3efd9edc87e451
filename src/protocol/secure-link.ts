// Token hashing and the nginx secure_link signature, computed the same way on both sides.
import { createHash, randomBytes } from 'node:crypto';

/** A fresh download token: 32 random bytes, base64url without padding (43 characters). */
export function newToken(): string {
  return randomBytes(32).toString('base64url');
}

/** What the backup host stores and `archive.arm` carries: lowercase hex sha256 of the token text. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/**
 * The value nginx computes for `secure_link_md5 "$secure_link_expires$uri$remote_addr <secret>"`:
 * base64url of the raw md5 digest, without padding. `expires` is signed as written in the URL.
 */
export function secureLinkMd5(expires: number | string, uri: string, clientIp: string, secret: string): string {
  return createHash('md5').update(`${expires}${uri}${clientIp} ${secret}`, 'utf8').digest('base64url');
}

/** The download file name: customer, sanitised snapshot and the archive id's first 8 characters. */
export function downloadFileName(customer: string, snapshot: string, archiveId: string): string {
  // Colons and plus signs are valid in snapshot names but awkward in file names and URLs.
  const safe = snapshot.replace(/[^A-Za-z0-9._-]/g, '-');
  // A 253-character domain plus a 128-character snapshot would pass the 255-byte file-name limit
  // and the nginx pattern ({0,250}); cut both parts so the name stays under 200 characters.
  return `${customer.slice(0, 100)}-${safe.slice(0, 80)}-${archiveId.slice(0, 8)}.tar`;
}

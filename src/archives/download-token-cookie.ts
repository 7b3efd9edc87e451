// Seals the emailed download token into a short-lived cookie for one request's download page, and opens it again.
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { isToken } from '../protocol/index.js';

/** Long enough to sign in (with a second factor) after opening the link; short enough not to linger. */
export const DOWNLOAD_COOKIE_LIFETIME_MS = 15 * 60_000;

const IV_BYTES = 12;
const TAG_BYTES = 16;
const VERSION = 'v1';

/**
 * `__Host-` would demand Path=/, and the cookie must be scoped to one download page; `__Secure-`
 * still makes browsers refuse it over plain HTTP or from a page that is not Secure.
 */
export function downloadCookieName(secure: boolean): string {
  return secure ? '__Secure-archway-download' : 'archway-download';
}

/** Its own key, derived from the shared encryption key: a ciphertext from another use never opens here. */
export function downloadCookieKey(encryptionKey: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', encryptionKey, Buffer.alloc(0), 'archway download token cookie v1', 32));
}

// The request id is authenticated with the token: a cookie copied to another request's page does not open.
function associatedData(requestId: string): Buffer {
  return Buffer.from(`archway download ${VERSION}\n${requestId}`, 'utf8');
}

/** `v1.<base64url(iv | tag | ciphertext)>`, the plaintext being `<expiry ms>.<token>`. */
export function sealDownloadToken(key: Buffer, requestId: string, token: string, expiresAt: Date): string {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(associatedData(requestId));
  const encrypted = Buffer.concat([cipher.update(`${expiresAt.getTime()}.${token}`, 'utf8'), cipher.final()]);
  return `${VERSION}.${Buffer.concat([iv, cipher.getAuthTag(), encrypted]).toString('base64url')}`;
}

/** The token, or null for a cookie that is missing, altered, for another request, or past its expiry. */
export function openDownloadToken(key: Buffer, requestId: string, value: unknown, now: Date): string | null {
  if (typeof value !== 'string' || value.length > 256 || !value.startsWith(`${VERSION}.`)) return null;
  const sealed = Buffer.from(value.slice(VERSION.length + 1), 'base64url');
  if (sealed.length <= IV_BYTES + TAG_BYTES) return null;
  let plain: string;
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, sealed.subarray(0, IV_BYTES));
    decipher.setAAD(associatedData(requestId));
    decipher.setAuthTag(sealed.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
    plain = Buffer.concat([decipher.update(sealed.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]).toString('utf8');
  } catch {
    return null;
  }
  const dot = plain.indexOf('.');
  const expiresMs = Number(plain.slice(0, dot));
  const token = plain.slice(dot + 1);
  if (dot < 1 || !Number.isSafeInteger(expiresMs) || expiresMs <= now.getTime() || !isToken(token)) return null;
  return token;
}

// Pins the backup host's SSH host key by its SHA-256 fingerprint, the form `ssh-keygen -l` prints.
import { createHash, timingSafeEqual } from 'node:crypto';
import { BackupHostConfigError } from './errors.js';

const FINGERPRINT = /^SHA256:([A-Za-z0-9+/]{43})=?$/;

/** Normalises `SHA256:<43 base64 chars>` (an optional trailing `=` is dropped); refuses anything else. */
export function parseFingerprint(text: string): string {
  const m = FINGERPRINT.exec(text.trim());
  if (!m)
    throw new BackupHostConfigError(
      'host key fingerprint must look like SHA256:<43 base64 characters> (see `ssh-keygen -lf <host key>.pub`)',
    );
  return `SHA256:${m[1]}`;
}

/** Fingerprint of a raw SSH public key blob, as sent by the server during key exchange. */
export function fingerprintOfKeyBlob(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

export function fingerprintsEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

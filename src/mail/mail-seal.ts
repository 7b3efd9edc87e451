// Seals a queued message with AES-256-GCM so its content (a reset link) is unreadable in the table.
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';

const IV_BYTES = 12;
const TAG_BYTES = 16;

/**
 * The mail queue gets its own key derived from the shared encryption key, so a ciphertext from
 * one use (mail, TOTP secrets, cookies) can never be replayed as another.
 */
export function mailQueueKey(encryptionKey: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', encryptionKey, Buffer.alloc(0), 'archway mail queue v1', 32));
}

/**
 * The keys a queued body may be sealed with: the current one first, then the earlier ones still
 * configured (ARCHWAY_ENCRYPTION_KEYS_OLD), so mail queued just before a key change still goes out.
 */
export function mailQueueKeys(config: { secrets: { encryptionKey: Buffer }; oldEncryptionKeys: Buffer[] }): Buffer[] {
  return [config.secrets.encryptionKey, ...config.oldEncryptionKeys].map(mailQueueKey);
}

/** The row's id and recipient are authenticated with the body: moving or redirecting a sealed body breaks it. */
function associatedData(id: string, recipient: string): Buffer {
  return Buffer.from(`${id}\n${recipient}`, 'utf8');
}

export function seal(key: Buffer, id: string, recipient: string, plaintext: string): Buffer {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(associatedData(id, recipient));
  const encrypted = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), encrypted]);
}

/** Throws if the body was altered, moved to another row, or sealed with another key. */
export function unseal(key: Buffer, id: string, recipient: string, sealed: Buffer): string {
  const decipher = createDecipheriv('aes-256-gcm', key, sealed.subarray(0, IV_BYTES));
  decipher.setAAD(associatedData(id, recipient));
  decipher.setAuthTag(sealed.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
  return Buffer.concat([decipher.update(sealed.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]).toString('utf8');
}

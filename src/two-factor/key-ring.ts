// The encryption keys for TOTP secrets: the current one encrypts, older ones (during a rotation) only decrypt.
import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto';

const IV_BYTES = 12;
const TAG_BYTES = 16;
const FORMAT = 'v1';

/** A stored secret names a key this process does not have (the old key was removed before `archway keys rotate`). */
export class UnknownEncryptionKey extends Error {
  constructor(readonly keyId: string) {
    super(`The secret was encrypted with key ${keyId}, which is neither ARCHWAY_ENCRYPTION_KEY nor in ARCHWAY_ENCRYPTION_KEYS_OLD.`);
    this.name = 'UnknownEncryptionKey';
  }
}

/** The stored text is not something this module wrote, or it was altered or moved to another row. */
export class UndecryptableSecret extends Error {
  constructor() {
    super('A stored secret cannot be decrypted: it was altered, moved to another row, or is not in the expected format.');
    this.name = 'UndecryptableSecret';
  }
}

/**
 * A key's public name: 8 hex characters of a hash of the key, so the ciphertext says which key
 * made it without revealing anything usable about the key.
 */
export function keyIdOf(key: Buffer): string {
  return createHash('sha256').update('archway key id\0').update(key).digest('hex').slice(0, 8);
}

/** TOTP secrets get their own subkey: a ciphertext made for the mail queue or a cookie never decrypts here. */
function subkey(key: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', key, Buffer.alloc(0), 'archway two-factor secret v1', 32));
}

export interface KeyRing {
  currentKeyId: string;
  /** Encrypts under the current key; `context` (the user id) is authenticated with it. */
  encrypt(plaintext: Buffer, context: string): string;
  /** Decrypts with whichever known key made it. */
  decrypt(stored: string, context: string): Buffer;
  /** The key id a stored value names, without decrypting it. */
  keyIdIn(stored: string): string | null;
  /** Every key id this ring can decrypt. */
  knownKeyIds(): string[];
}

export function createKeyRing(currentKey: Buffer, oldKeys: Buffer[] = []): KeyRing {
  const keys = new Map<string, Buffer>();
  for (const old of oldKeys) keys.set(keyIdOf(old), subkey(old));
  const currentKeyId = keyIdOf(currentKey);
  keys.set(currentKeyId, subkey(currentKey));
  const current = keys.get(currentKeyId)!;

  const aad = (keyId: string, context: string) => Buffer.from(`${FORMAT}:${keyId}:${context}`, 'utf8');

  return {
    currentKeyId,
    encrypt(plaintext, context) {
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv('aes-256-gcm', current, iv);
      cipher.setAAD(aad(currentKeyId, context));
      const body = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
      return `${FORMAT}:${currentKeyId}:${iv.toString('base64url')}:${body.toString('base64url')}`;
    },
    decrypt(stored, context) {
      const parts = stored.split(':');
      if (parts.length !== 4 || parts[0] !== FORMAT || !/^[0-9a-f]{8}$/.test(parts[1] ?? '')) throw new UndecryptableSecret();
      const [, keyId, ivText, bodyText] = parts as [string, string, string, string];
      const key = keys.get(keyId);
      if (key === undefined) throw new UnknownEncryptionKey(keyId);
      const iv = Buffer.from(ivText, 'base64url');
      const body = Buffer.from(bodyText, 'base64url');
      if (iv.length !== IV_BYTES || body.length < TAG_BYTES) throw new UndecryptableSecret();
      try {
        const decipher = createDecipheriv('aes-256-gcm', key, iv);
        decipher.setAAD(aad(keyId, context));
        decipher.setAuthTag(body.subarray(body.length - TAG_BYTES));
        return Buffer.concat([decipher.update(body.subarray(0, body.length - TAG_BYTES)), decipher.final()]);
      } catch {
        throw new UndecryptableSecret();
      }
    },
    keyIdIn(stored) {
      const parts = stored.split(':');
      return parts.length === 4 && parts[0] === FORMAT ? (parts[1] ?? null) : null;
    },
    knownKeyIds: () => [...keys.keys()],
  };
}

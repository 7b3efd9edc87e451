// Hashes and verifies passwords: HMAC-SHA-256 with the server's pepper, then argon2id, a few at a time.
import { createHmac, randomBytes } from 'node:crypto';
import argon2 from 'argon2';
import type { Config, Secrets } from '../config.js';
import { Semaphore } from './semaphore.js';

export interface PasswordHasher {
  hash(password: string): Promise<string>;
  /** ok: the password matches; needsRehash: it does, but was stored with other argon2 parameters. */
  verify(stored: string, password: string): Promise<{ ok: boolean; needsRehash: boolean }>;
  /** Costs what verify costs, for unknown users, so timing does not tell which addresses exist. */
  verifyDummy(password: string): Promise<void>;
  /** Hashes waiting for a free slot now (the archway_password_hash_queue_length gauge). */
  readonly queued: number;
}

/** Passwords are compared after NFKC, so the same password typed on another keyboard or OS still matches. */
export function normalizePassword(password: string): string {
  return password.normalize('NFKC');
}

export function createPasswordHasher(
  config: Pick<Config, 'auth'> & Partial<Pick<Config, 'oldPasswordPeppers'>> & { secrets: Pick<Secrets, 'passwordPepper'> },
): PasswordHasher {
  const { memoryKiB, timeCost, parallelism } = config.auth.argon2;
  const options = { type: argon2.argon2id, memoryCost: memoryKiB, timeCost, parallelism } as const;
  const pepper = config.secrets.passwordPepper;
  // Kept only while passwords hashed under them may still be in use (see docs/SECURITY.md).
  const oldPeppers = config.oldPasswordPeppers ?? [];
  // argon2 runs in libuv's thread pool; the semaphore keeps a flood of sign-ins from filling that pool
  // (which file and DNS work share) and from holding more than N x memoryKiB at once.
  const slots = new Semaphore(config.auth.hashConcurrency);

  // The pepper lives outside the database: a stolen users table alone cannot be brute-forced offline.
  const pepperedWith = (key: string, password: string): Buffer =>
    createHmac('sha256', key).update(normalizePassword(password), 'utf8').digest();
  const peppered = (password: string): Buffer => pepperedWith(pepper, password);

  let dummy: Promise<string> | undefined;
  const dummyHash = (): Promise<string> => (dummy ??= slots.run(() => argon2.hash(randomBytes(32), options)));

  return {
    get queued() {
      return slots.queued;
    },

    hash: (password) => slots.run(() => argon2.hash(peppered(password), options)),

    async verify(stored, password) {
      let ok: boolean;
      try {
        ok = await slots.run(() => argon2.verify(stored, peppered(password)));
      } catch {
        // A stored value that is not an argon2 hash matches nothing.
        return { ok: false, needsRehash: false };
      }
      if (!ok) {
        // After a pepper change: a match under an earlier pepper is right, and is re-hashed now.
        for (const old of oldPeppers) {
          if (await slots.run(() => argon2.verify(stored, pepperedWith(old, password)))) return { ok: true, needsRehash: true };
        }
        return { ok: false, needsRehash: false };
      }
      const outdated = !stored.startsWith('$argon2id$') || argon2.needsRehash(stored, { memoryCost: memoryKiB, timeCost, parallelism });
      return { ok, needsRehash: outdated };
    },

    async verifyDummy(password) {
      const stored = await dummyHash();
      // As many verifications as a wrong password for a real account costs, old peppers included.
      for (const key of [pepper, ...oldPeppers]) await slots.run(() => argon2.verify(stored, pepperedWith(key, password)));
    },
  };
}

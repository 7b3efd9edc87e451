// Recovery codes: ten single-use codes shown once, stored only as keyed hashes.
import { createHmac, hkdfSync, randomBytes } from 'node:crypto';

export const RECOVERY_CODE_COUNT = 10;
const ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567';
/** 12 characters of a 32-letter alphabet: 60 bits, far beyond online guessing with regulation. */
const CODE_LENGTH = 12;

/**
 * The hash key comes from the password pepper, which is not in the database: a stolen table of
 * code hashes cannot even be brute-forced offline without it. A keyed hash (not argon2) lets a
 * code be found with one indexed lookup instead of ten slow verifications per attempt.
 */
export function recoveryCodeKey(pepper: string): Buffer {
  return Buffer.from(hkdfSync('sha256', Buffer.from(pepper, 'utf8'), Buffer.alloc(0), 'archway recovery code v1', 32));
}

export function generateRecoveryCodes(): string[] {
  const codes = new Set<string>();
  while (codes.size < RECOVERY_CODE_COUNT) {
    const bytes = randomBytes(CODE_LENGTH);
    let code = '';
    // 256 is a multiple of 32, so taking the low five bits keeps every letter equally likely.
    for (const b of bytes) code += ALPHABET[b & 31];
    codes.add(`${code.slice(0, 4)}-${code.slice(4, 8)}-${code.slice(8)}`);
  }
  return [...codes];
}

/** Case, spaces and dashes do not matter when typed; anything else is not a recovery code. */
export function normalizeRecoveryCode(input: string): string | null {
  const clean = input.toLowerCase().replace(/[\s-]/g, '');
  return clean.length === CODE_LENGTH && [...clean].every((c) => ALPHABET.includes(c)) ? clean : null;
}

export function hashRecoveryCode(key: Buffer, code: string): Buffer {
  const normalized = normalizeRecoveryCode(code);
  if (normalized === null) throw new RangeError('not a recovery code');
  return createHmac('sha256', key).update(normalized).digest();
}

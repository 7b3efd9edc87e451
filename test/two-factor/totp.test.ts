import { describe, expect, it } from 'vitest';
import { base32Decode, base32Encode, codeAt, matchingStep, STEP_SECONDS } from '../../src/two-factor/totp.js';

// RFC 6238 appendix B, SHA-1 key, last six digits of each eight-digit code.
const RFC_SECRET = Buffer.from('12345678901234567890', 'ascii');
const RFC_CODES: [number, string][] = [
  [59, '287082'],
  [1111111109, '081804'],
  [1234567890, '005924'],
  [2000000000, '279037'],
];

describe('TOTP codes', () => {
  it('are the codes RFC 6238 lists for its SHA-1 key', () => {
    for (const [seconds, code] of RFC_CODES) expect(codeAt(RFC_SECRET, new Date(seconds * 1000))).toBe(code);
  });

  it('name the time step they belong to, one step either side of now, and no further', () => {
    const now = new Date(1_800_000_015_000);
    const step = Math.floor(now.getTime() / 1000 / STEP_SECONDS);
    for (const offset of [-1, 0, 1]) {
      const code = codeAt(RFC_SECRET, new Date(now.getTime() + offset * STEP_SECONDS * 1000));
      expect(matchingStep(RFC_SECRET, code, now)).toBe(step + offset);
    }
    for (const offset of [-2, 2]) {
      const code = codeAt(RFC_SECRET, new Date(now.getTime() + offset * STEP_SECONDS * 1000));
      expect(matchingStep(RFC_SECRET, code, now)).toBeNull();
    }
  });

  it('accept "123 456" as typed, and refuse anything that is not six digits', () => {
    const now = new Date(1_800_000_015_000);
    const code = codeAt(RFC_SECRET, now);
    expect(matchingStep(RFC_SECRET, `${code.slice(0, 3)} ${code.slice(3)}`, now)).not.toBeNull();
    for (const typed of ['', '12345', '1234567', 'abcdef', `${code}0`]) expect(matchingStep(RFC_SECRET, typed, now)).toBeNull();
  });
});

describe('the base32 key', () => {
  it('is RFC 4648 base32 without padding and reads back from the grouped, lower-case or spaced form', () => {
    expect(base32Encode(RFC_SECRET)).toBe('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ');
    expect(base32Decode('gezd gnbv gy3t qojq gezd gnbv gy3t qojq')).toEqual(RFC_SECRET);
  });

  it('refuses text that is not base32', () => {
    expect(() => base32Decode('GEZDGNBVGY3TQOJ1')).toThrow();
  });
});

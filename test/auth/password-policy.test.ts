import { describe, expect, it } from 'vitest';
import { checkPassword, isCommonPassword, PASSWORD_MESSAGES } from '../../src/users/password-policy.js';

const who = { email: 'alice.moreau@example.net', domain: 'social.example.org' };

describe('the password policy', () => {
  it('accepts a password that meets every rule', () => {
    expect(checkPassword('Tangerine-Harbour-42', who)).toEqual([]);
  });

  it('refuses fewer than 10 characters, and only for that', () => {
    expect(checkPassword('Short1pwX', who)).toEqual([PASSWORD_MESSAGES.tooShort]);
    expect(checkPassword('Short1pwXy', who)).toEqual([]);
  });

  it('asks for an uppercase letter, a lowercase letter and a number, each with its own message', () => {
    expect(checkPassword('tangerine-harbour-42', who)).toEqual([PASSWORD_MESSAGES.noUppercase]);
    expect(checkPassword('TANGERINE-HARBOUR-42', who)).toEqual([PASSWORD_MESSAGES.noLowercase]);
    expect(checkPassword('Tangerine-Harbour-xx', who)).toEqual([PASSWORD_MESSAGES.noDigit]);
  });

  it('names every failed rule at once', () => {
    expect(checkPassword('', who)).toEqual([
      PASSWORD_MESSAGES.tooShort,
      PASSWORD_MESSAGES.noUppercase,
      PASSWORD_MESSAGES.noLowercase,
      PASSWORD_MESSAGES.noDigit,
    ]);
  });

  it('refuses a common password even when it meets the character rules, whatever its case', () => {
    expect(isCommonPassword('password123')).toBe(true);
    expect(checkPassword('Password123', who)).toEqual([PASSWORD_MESSAGES.common]);
    expect(checkPassword('QWERTYuiop1', who)).toContain(PASSWORD_MESSAGES.common);
    expect(checkPassword('password', who)).toEqual([
      PASSWORD_MESSAGES.tooShort,
      PASSWORD_MESSAGES.noUppercase,
      PASSWORD_MESSAGES.noDigit,
      PASSWORD_MESSAGES.common,
    ]);
  });

  it('ships at least the 10,000 most common passwords', () => {
    // Far down the ranked list, not just the top few.
    for (const p of ['123456', 'iloveyou', 'sunshine', 'trustno1', 'starwars']) expect(isCommonPassword(p)).toBe(true);
    expect(isCommonPassword('Tangerine-Harbour-42')).toBe(false);
  });

  it("refuses the email address's local part and the domain, in any case", () => {
    expect(checkPassword('My-ALICE.MOREAU-2024', who)).toEqual([PASSWORD_MESSAGES.containsEmail]);
    expect(checkPassword('Backup-Social.Example.Org-1', who)).toEqual([PASSWORD_MESSAGES.containsDomain]);
    expect(checkPassword('Exampled-Garden-77', who)).toEqual([PASSWORD_MESSAGES.containsDomain]);
    expect(checkPassword('Tangerine-Harbour-42', { email: 'tangerine@example.net', domain: 'harbour.example.org' })).toEqual([
      PASSWORD_MESSAGES.containsEmail,
      PASSWORD_MESSAGES.containsDomain,
    ]);
  });

  it('does not refuse every password for a one- or two-letter local part', () => {
    expect(checkPassword('Tangerine-Harbour-42', { email: 'ta@example.net', domain: 'x.io' })).toEqual([]);
  });

  it('allows 128 characters of any script and emoji, counted as characters', () => {
    const start = 'Aa1-Ünïcødé-Пароль-密码-🔐-';
    const long = start + 'ж'.repeat(128 - [...start].length);
    expect([...long].length).toBe(128);
    expect(checkPassword(long, who)).toEqual([]);
    // An emoji is one character, not two UTF-16 units: nine are too few, ten are enough.
    expect(checkPassword('🔐🔐🔐🔐🔐🔐Aa1', who)).toEqual([PASSWORD_MESSAGES.tooShort]);
    expect(checkPassword('🔐🔐🔐🔐🔐🔐🔐Aa1', who)).toEqual([]);
    expect(checkPassword('Ωmega-σigma-9', who)).toEqual([]);
  });

  it('normalises with NFKC before checking, so full-width letters count as what they are', () => {
    // Full-width "Ｐａｓｓｗｏｒｄ１２３" is NFKC "Password123", a common password.
    expect(checkPassword('Ｐａｓｓｗｏｒｄ１２３', who)).toEqual([PASSWORD_MESSAGES.common]);
  });

  it('refuses absurdly long input instead of hashing a megabyte', () => {
    expect(checkPassword(`Aa1${'x'.repeat(1100)}`, who)).toEqual([PASSWORD_MESSAGES.tooLong]);
  });
});

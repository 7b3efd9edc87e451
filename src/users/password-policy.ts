// The password rules of the portal, each failed rule with its own message for the form.
import { dictionary } from '@zxcvbn-ts/language-common';

export const MIN_PASSWORD_LENGTH = 10;
/** Far above the 128 the policy promises; only there so a megabyte of text is not hashed. */
export const MAX_PASSWORD_LENGTH = 1024;

export const PASSWORD_MESSAGES = {
  tooShort: `Use at least ${MIN_PASSWORD_LENGTH} characters.`,
  tooLong: `Use at most ${MAX_PASSWORD_LENGTH} characters.`,
  noUppercase: 'Include at least one uppercase letter.',
  noLowercase: 'Include at least one lowercase letter.',
  noDigit: 'Include at least one number.',
  common: 'This is one of the most common passwords, which attackers try first. Choose another.',
  containsEmail: 'Do not use your email address (the part before the @) in your password.',
  containsDomain: 'Do not use your domain name in your password.',
} as const;

// zxcvbn-ts's ranked list of leaked passwords (about 49,000, most common first), well past the top 10,000.
let common: Set<string> | undefined;
function commonPasswords(): Set<string> {
  common ??= new Set((dictionary['passwords-common'] as string[]).map((p) => p.toLowerCase()));
  return common;
}

/** True when the password, whatever its case, is on the common-passwords list. */
export function isCommonPassword(password: string): boolean {
  return commonPasswords().has(password.normalize('NFKC').toLowerCase());
}

// Fragments shorter than this would refuse half of all passwords ("jo@..." and every "jo" in a word).
const MIN_FRAGMENT = 3;

/** The parts of a domain worth refusing: the whole name and each label but the top-level one. */
function domainFragments(domain: string): string[] {
  const name = domain.trim().toLowerCase().replace(/\.$/, '');
  if (name === '') return [];
  const labels = name.split('.');
  const inner = labels.length > 1 ? labels.slice(0, -1) : labels;
  return [name, ...inner].filter((f) => f.length >= Math.max(MIN_FRAGMENT, 4));
}

/**
 * Checks a password against every rule and returns one user-facing message per failed rule,
 * none when it is acceptable. The password is NFKC-normalised first, as it is before hashing.
 */
export function checkPassword(password: string, context: { email?: string | null; domain?: string | null } = {}): string[] {
  const normalized = password.normalize('NFKC');
  const lower = normalized.toLowerCase();
  // Code points, not UTF-16 units: an emoji is one character to the person typing it.
  const length = [...normalized].length;
  const problems: string[] = [];
  if (length < MIN_PASSWORD_LENGTH) problems.push(PASSWORD_MESSAGES.tooShort);
  if (length > MAX_PASSWORD_LENGTH) problems.push(PASSWORD_MESSAGES.tooLong);
  if (!/\p{Lu}/u.test(normalized)) problems.push(PASSWORD_MESSAGES.noUppercase);
  if (!/\p{Ll}/u.test(normalized)) problems.push(PASSWORD_MESSAGES.noLowercase);
  if (!/\p{Nd}/u.test(normalized)) problems.push(PASSWORD_MESSAGES.noDigit);
  if (isCommonPassword(normalized)) problems.push(PASSWORD_MESSAGES.common);

  const local = (context.email ?? '').split('@')[0]?.normalize('NFKC').toLowerCase() ?? '';
  if (local.length >= MIN_FRAGMENT && lower.includes(local)) problems.push(PASSWORD_MESSAGES.containsEmail);
  if (domainFragments((context.domain ?? '').normalize('NFKC')).some((f) => lower.includes(f))) {
    problems.push(PASSWORD_MESSAGES.containsDomain);
  }
  return problems;
}

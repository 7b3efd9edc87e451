// Validates and normalises what the operator types for an account: email, domain, plan, role, backup host.
import { domainToASCII } from 'node:url';
import { isBackupHostName } from '../backup-host/hosts-file.js';
import type { UserRole } from '../users/users.tables.js';

export const ROLES: readonly UserRole[] = ['customer', 'operator'];

// One address, no display name or list; the same shape the mail queue accepts.
const EMAIL = /^[^\s@<>,;"()\\]+@[^\s@<>,;"()\\]+\.[^\s@<>,;"()\\]+$/;
const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;
// Plans are the provider's own short names ("small", "pro-2024"); there is no fixed list to check against.
const PLAN = /^[a-z0-9][a-z0-9._-]{0,39}$/;
const SUBSCRIPTION = /^[A-Za-z0-9_-]{1,64}$/;

export class InvalidAccountField extends Error {
  constructor(
    readonly field: 'email' | 'domain' | 'plan' | 'role' | 'backup_host' | 'paypal_subscription_id',
    readonly userMessage: string,
  ) {
    super(userMessage);
    this.name = 'InvalidAccountField';
  }
}

/** Trims; keeps the local part as typed (some servers care about its case) and lowercases the domain. */
export function normalizeEmail(raw: string): string {
  const email = raw.trim();
  if (email.length > 254 || !EMAIL.test(email)) {
    throw new InvalidAccountField('email', `"${raw.trim().slice(0, 100)}" is not an email address like someone@example.net.`);
  }
  const at = email.lastIndexOf('@');
  return `${email.slice(0, at)}@${email.slice(at + 1).toLowerCase()}`;
}

/** A host name of at least two labels; an internationalised name is stored in its ASCII (punycode) form. */
export function normalizeDomain(raw: string, field: 'domain' = 'domain'): string {
  const trimmed = raw.trim().toLowerCase().replace(/\.$/, '');
  const ascii = trimmed === '' ? '' : domainToASCII(trimmed);
  const labels = ascii.split('.');
  if (ascii === '' || ascii.length > 253 || labels.length < 2 || !labels.every((l) => LABEL.test(l)) || /^\d+$/.test(labels.at(-1) ?? '')) {
    throw new InvalidAccountField(field, `"${raw.trim().slice(0, 100)}" is not a domain name like social.example.net.`);
  }
  return ascii;
}

/** A fleet host's name as ARCHWAY_BACKUP_HOSTS_FILE spells it: "backup-1" or "backup-1.example.net". */
export function normalizeBackupHostName(raw: string): string {
  const name = raw.trim().toLowerCase();
  if (!isBackupHostName(name))
    throw new InvalidAccountField(
      'backup_host',
      `"${raw.trim().slice(0, 100)}" is not a backup host name like backup-1 or backup-1.example.net.`,
    );
  return name;
}

export function normalizePlan(raw: string): string {
  const plan = raw.trim().toLowerCase();
  if (!PLAN.test(plan)) {
    throw new InvalidAccountField(
      'plan',
      `"${raw.trim().slice(0, 100)}" is not a plan name: use up to 40 letters, digits, dots, dashes or underscores.`,
    );
  }
  return plan;
}

export function normalizeRole(raw: string): UserRole {
  const role = raw.trim().toLowerCase();
  if (!(ROLES as string[]).includes(role))
    throw new InvalidAccountField('role', `"${raw.trim().slice(0, 100)}" is not a role: use customer or operator.`);
  return role as UserRole;
}

export function normalizeSubscriptionId(raw: string): string {
  const id = raw.trim();
  if (!SUBSCRIPTION.test(id)) {
    throw new InvalidAccountField(
      'paypal_subscription_id',
      `"${id.slice(0, 100)}" is not a PayPal subscription id (letters, digits, dashes).`,
    );
  }
  return id;
}

export interface AccountInput {
  email: string;
  role?: string | undefined;
  domain?: string | undefined;
  plan?: string | undefined;
  backupHost?: string | undefined;
  paypalSubscriptionId?: string | undefined;
}

export interface ValidAccount {
  email: string;
  role: UserRole;
  domain: string | null;
  plan: string | null;
  backupHost: string | null;
  paypalSubscriptionId: string | null;
}

const blank = (v: string | undefined): boolean => v === undefined || v.trim() === '';

/** Every problem of one account at once, so a form or an import line can name them all. */
export function validateAccount(input: AccountInput): { account: ValidAccount | null; problems: InvalidAccountField[] } {
  const problems: InvalidAccountField[] = [];
  const attempt = <T>(run: () => T): T | null => {
    try {
      return run();
    } catch (error) {
      if (error instanceof InvalidAccountField) {
        problems.push(error);
        return null;
      }
      throw error;
    }
  };
  const email = attempt(() => normalizeEmail(input.email));
  const role = blank(input.role) ? 'customer' : attempt(() => normalizeRole(input.role ?? ''));
  // A customer is an installation: without its domain and plan the account means nothing.
  const needsInstallation = role !== 'operator';
  if (needsInstallation && blank(input.domain))
    problems.push(new InvalidAccountField('domain', 'A customer needs the domain of their installation.'));
  if (needsInstallation && blank(input.plan)) problems.push(new InvalidAccountField('plan', 'A customer needs a plan.'));
  const domain = blank(input.domain) ? null : attempt(() => normalizeDomain(input.domain ?? ''));
  const plan = blank(input.plan) ? null : attempt(() => normalizePlan(input.plan ?? ''));
  const backupHost = blank(input.backupHost) ? null : attempt(() => normalizeBackupHostName(input.backupHost ?? ''));
  const paypalSubscriptionId = blank(input.paypalSubscriptionId)
    ? null
    : attempt(() => normalizeSubscriptionId(input.paypalSubscriptionId ?? ''));
  if (problems.length > 0 || email === null || role === null) return { account: null, problems };
  return { account: { email, role, domain, plan, backupHost, paypalSubscriptionId }, problems };
}

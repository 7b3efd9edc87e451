// First-look mode's demo accounts: an operator and a customer with random passwords, so a newcomer can sign in at once.
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { AppContext } from '../context.js';
import { checkPassword } from '../users/password-policy.js';
import type { UserRole } from '../users/users.tables.js';
import { recordAudit } from '../users/audit.js';
import { countUsers, insertUser } from '../users/user.repository.js';
import { issueAccountToken } from './account-token.js';

export const FIRST_LOOK_ACCOUNTS_FILE = 'first-look-accounts.txt';
/** The demo customer's installation domain: its backups are the folder of this name on the backup host. */
export const DEMO_CUSTOMER_DOMAIN = 'demo.example.net';

export interface DemoAccount {
  role: UserRole;
  email: string;
  /**
   * The customer's password; for the operator, the path of a one-time set-up link instead: an
   * operator turns two-factor on together with its password, never after signing in with one.
   */
  password: string;
}

const DEMO = [
  { role: 'operator' as const, email: 'demo-operator@example.net', domain: null, plan: null },
  { role: 'customer' as const, email: 'demo-customer@example.net', domain: DEMO_CUSTOMER_DOMAIN, plan: 'demo' },
];

/** 120 random bits as 20 base64url characters, drawn again in the rare case the policy would refuse them. */
function randomPassword(email: string, domain: string | null): string {
  for (;;) {
    const candidate = randomBytes(15).toString('base64url');
    if (checkPassword(candidate, { email, domain }).length === 0) return candidate;
  }
}

/**
 * On the first start in first-look mode (no file yet, no account yet) creates the demo accounts and
 * writes `<role> <email> <password>` lines to var/first-look-accounts.txt (0600). Returns them so the
 * caller prints them once; null on every later start and always in server mode.
 */
export async function createFirstLookAccounts(ctx: AppContext): Promise<{ accounts: DemoAccount[]; file: string } | null> {
  if (ctx.config.mode !== 'first-look') return null;
  const file = path.join(ctx.config.dataDir, FIRST_LOOK_ACCOUNTS_FILE);
  if (existsSync(file)) return null;
  const db = ctx.db;
  // Accounts already there means this is not the first start (the file was deleted, or users were added).
  if ((await countUsers(db)) > 0) return null;

  const accounts = DEMO.map((d) => ({ ...d, password: d.role === 'operator' ? '' : randomPassword(d.email, d.domain) }));
  const hashes = await Promise.all(accounts.map(async (a) => (a.password === '' ? null : ctx.passwords.hash(a.password))));
  await db.transaction().execute(async (trx) => {
    for (const [i, account] of accounts.entries()) {
      const hash = hashes[i] ?? null;
      const user = await insertUser(trx, {
        email: account.email,
        role: account.role,
        domain: account.domain,
        plan: account.plan,
        status: hash === null ? 'invited' : 'active',
        passwordHash: hash,
      });
      if (hash === null) account.password = `/set-password?token=${await issueAccountToken(trx, user.id, 'invitation', ctx.clock.now())}`;
      await recordAudit(trx, { actor: 'system', action: 'user.first_look_created', subject: user.id, detail: { role: user.role } });
    }
    // Written before the commit: if the file cannot be written the accounts are not created either,
    // so nobody is left with accounts whose passwords were never shown. 'wx' never overwrites.
    writeFileSync(file, accounts.map((a) => `${a.role} ${a.email} ${a.password}\n`).join(''), { mode: 0o600, flag: 'wx' });
    try {
      chmodSync(file, 0o600);
    } catch (error) {
      unlinkSync(file);
      throw error;
    }
  });
  return { accounts: accounts.map(({ role, email, password }) => ({ role, email, password })), file };
}

/** The console text shown once on the first start. */
export function describeFirstLookAccounts(result: { accounts: DemoAccount[]; file: string }, publicUrl: string): string {
  const width = Math.max(...result.accounts.map((a) => a.email.length));
  return [
    '',
    'First-look accounts (shown this once; also kept in the file below, mode 0600):',
    ...result.accounts.map((a) =>
      a.password.startsWith('/')
        ? `  ${a.role.padEnd(8)}  ${a.email.padEnd(width)}  set the password and two-factor sign-in at ${publicUrl}${a.password}`
        : `  ${a.role.padEnd(8)}  ${a.email.padEnd(width)}  ${a.password}`,
    ),
    `  file: ${result.file}`,
    `Sign in at ${publicUrl}/sign-in`,
    '',
    '',
  ].join('\n');
}

// `archway users suspend|resume|show`: the operator stops and restarts an account, and looks at one.
import { loadAccountOverview } from '../accounts/account-overview.js';
import { AccountStatusUnchanged, resumeAccount, suspendAccount } from '../accounts/account-status.service.js';
import { UnknownAccount } from '../accounts/account.service.js';
import { formatUtc } from '../format.js';
import { isTwoFactorOn } from '../two-factor/two-factor.service.js';
import { findUserByEmail } from '../users/user.repository.js';
import { UsageError } from './command.js';
import { withDatabase } from './with-database.js';

const EX_DATAERR = 65;
/** An audit reason is a sentence, not a document. */
const MAX_REASON = 500;

function fail(message: string): number {
  process.stderr.write(`archway users: ${message}\n`);
  return EX_DATAERR;
}

export async function changeStatus(action: 'suspend' | 'resume', email: string | undefined, reason: string | undefined): Promise<number> {
  const why = reason?.trim() ?? '';
  if (email === undefined || why === '')
    throw new UsageError(`archway users ${action} needs --email and --reason (it goes into the audit log).`);
  if (why.length > MAX_REASON || /[\u0000-\u001f\u007f]/.test(why)) {
    throw new UsageError(`--reason must be one line of at most ${MAX_REASON} characters.`);
  }
  return withDatabase(async ({ db, mail }) => {
    const change = { email, reason: why, actor: 'cli', now: new Date(), mail };
    try {
      if (action === 'suspend') {
        const user = await suspendAccount(db, change);
        process.stdout.write(
          `Suspended ${user.email}: ${user.endedSessions} signed-in browser${user.endedSessions === 1 ? '' : 's'} signed out; the customer is told by email.\n`,
        );
      } else {
        const user = await resumeAccount(db, change);
        process.stdout.write(`Resumed ${user.email} (now ${user.status}); the customer is told by email.\n`);
      }
      return 0;
    } catch (error) {
      if (error instanceof UnknownAccount || error instanceof AccountStatusUnchanged) return fail(error.message);
      throw error;
    }
  });
}

export async function showAccount(email: string | undefined): Promise<number> {
  if (email === undefined) throw new UsageError('archway users show needs --email.');
  return withDatabase(async ({ db, config }) => {
    const user = await findUserByEmail(db, email);
    if (user === null) return fail(new UnknownAccount(email.trim()).message);
    const overview = await loadAccountOverview(db, user.id, new Date(), config.auth.sessionIdleMinutes);
    if (overview === null) return fail(new UnknownAccount(email.trim()).message);
    const lastPayment = overview.payments[0];
    const lastSignIn = overview.signIns[0];
    const lines: Array<[string, string]> = [
      ['role', user.role],
      ['status', user.status],
      ['domain', user.domain ?? '-'],
      ['plan', user.plan ?? '-'],
      ['backup host', user.backupHost ?? '(the default)'],
      ['subscription', user.paypalSubscriptionId ?? '-'],
      ['password', user.passwordHash === null ? 'not set yet' : 'set'],
      ['two-factor', (await isTwoFactorOn(db, user.id)) ? 'on' : 'off'],
      ['created', formatUtc(user.createdAt)],
      ['signed in', `${overview.sessions.length} browser${overview.sessions.length === 1 ? '' : 's'}`],
      [
        'payments',
        lastPayment === undefined
          ? 'none'
          : `${overview.payments.length}, last ${formatUtc(lastPayment.paidAt)} ${lastPayment.amount} ${lastPayment.currency} (${lastPayment.status})`,
      ],
      [
        'last sign-in',
        lastSignIn === undefined ? 'never' : `${formatUtc(lastSignIn.at)} from ${lastSignIn.ip ?? '?'} (${lastSignIn.outcome})`,
      ],
    ];
    process.stdout.write(`${user.email}\n${lines.map(([k, v]) => `  ${k.padEnd(13)}${v}`).join('\n')}\n`);
    return 0;
  });
}

// `archway users`: the operator creates accounts (each invited by email), changes addresses, suspends, resumes and looks.
import { readFile } from 'node:fs/promises';
import { InvalidAccountField, validateAccount } from '../accounts/account-fields.js';
import {
  addUser,
  changeUserEmail,
  DomainAlreadyUsed,
  EmailAlreadyUsed,
  inviteAgain,
  InvitationNotNeeded,
  setBackupHost,
  backupHostProblem,
  UnknownAccount,
} from '../accounts/account.service.js';
import type { Config } from '../config.js';
import { importUsers, ImportRefused, IMPORT_COLUMNS } from '../accounts/user-import.js';
import { UsageError, type Command } from './command.js';
import { changeStatus, showAccount } from './users-status.actions.js';
import { problemLines, withDatabase } from './with-database.js';

/** sysexits(3): the data given was wrong, or the input file could not be read. */
const EX_DATAERR = 65;
const EX_NOINPUT = 66;

const OPTIONS_OF: Record<string, string[]> = {
  add: ['email', 'domain', 'plan', 'role', 'backup-host', 'paypal-subscription-id'],
  import: [],
  'set-email': ['email', 'new-email'],
  'set-host': ['email', 'backup-host'],
  suspend: ['email', 'reason'],
  resume: ['email', 'reason'],
  show: ['email'],
  invite: ['email'],
};

const fleetNames = (config: Config): string[] => config.backupHosts.hosts.map((h) => h.name);

function fail(message: string, code = EX_DATAERR): number {
  process.stderr.write(`archway users: ${message}\n`);
  return code;
}

export const usersCommand: Command = {
  name: 'users',
  summary: "Add or import accounts (each gets an invitation email), change an account's email, suspend, resume or show one.",
  usage: `Usage:
  archway users add --email ADDRESS --domain DOMAIN --plan PLAN [--role customer|operator]
                    [--backup-host HOST] [--paypal-subscription-id ID]
  archway users import FILE.csv
  archway users set-email --email CURRENT --new-email NEW
  archway users set-host --email ADDRESS --backup-host NAME
  archway users suspend --email ADDRESS --reason TEXT
  archway users resume --email ADDRESS --reason TEXT
  archway users show --email ADDRESS
  archway users invite --email ADDRESS

add        Creates one account and queues an invitation email with a link to set a password
           (valid 7 days). An operator needs no --domain or --plan.
import     Creates every account of a CSV file with a header row; columns:
           ${IMPORT_COLUMNS.join(', ')} (only email is required; role defaults to customer).
           If any row is wrong nothing is imported, and each problem is printed with its line.
           An address or a domain belongs to one account only (domains compared without case
           or a trailing dot).
set-email  Changes an account's email address (customers ask for this by email). The change is
           written to the audit log and both the old and the new address are told. Every session
           and open link of the account ends; ready archives get a new link at the new address.
set-host   Moves a customer's future archives to another backup host of the fleet (audited).
           An archive already requested stays where it was built, and its link keeps working.
           add, import and set-host accept only a host of this portal's fleet
           (ARCHWAY_BACKUP_HOSTS_FILE, or the single host's ARCHWAY_BACKUP_HOST_NAME).
suspend    Stops an account: nobody can sign in, no archive or link is issued, every signed-in
           browser is signed out. Nothing is deleted. The reason goes into the audit log and to
           the customer by email.
resume     Gives a suspended account back its access (audited; the customer is told).
show       Prints what is stored about an account: status, plan, two-factor, sessions, payments.
invite     Sends a fresh invitation to an account that has not set itself up: an invited one, or
           an operator without two-factor sign-in (an operator turns it on only through this
           link, together with the password). Earlier links stop working.

Mail is queued in the database and sent by the running portal (archway serve).`,
  options: {
    email: { type: 'string' },
    domain: { type: 'string' },
    plan: { type: 'string' },
    role: { type: 'string' },
    'backup-host': { type: 'string' },
    'paypal-subscription-id': { type: 'string' },
    'new-email': { type: 'string' },
    reason: { type: 'string' },
  },
  maxPositionals: 2,
  async run({ values, positionals }) {
    const [action, file] = positionals;
    if (action === undefined || !(action in OPTIONS_OF)) {
      throw new UsageError(
        action === undefined
          ? 'Say what to do: archway users add, import, set-email, set-host, suspend, resume, show or invite.'
          : `Unknown action "${action}" for "archway users": use add, import, set-email, set-host, suspend, resume, show or invite.`,
      );
    }
    const allowed = OPTIONS_OF[action] ?? [];
    const stray = Object.keys(values).filter((k) => values[k] !== undefined && !allowed.includes(k));
    if (stray.length > 0) throw new UsageError(`"archway users ${action}" does not take --${stray.join(', --')}.`);
    const text = (name: string): string | undefined => (typeof values[name] === 'string' ? (values[name] as string) : undefined);

    if (action === 'suspend' || action === 'resume' || action === 'show') {
      if (file !== undefined) throw new UsageError(`Unexpected argument "${file}" for "archway users ${action}".`);
      return action === 'show' ? showAccount(text('email')) : changeStatus(action, text('email'), text('reason'));
    }

    if (action === 'invite') {
      const email = text('email');
      if (file !== undefined) throw new UsageError(`Unexpected argument "${file}" for "archway users invite".`);
      if (email === undefined) throw new UsageError('archway users invite needs --email.');
      return withDatabase(async ({ db, publicUrl, mail }) => {
        try {
          const user = await inviteAgain(db, email, { publicUrl, mail, now: new Date(), actor: 'cli' });
          process.stdout.write(`Sent a new invitation to ${user.email}; earlier links no longer work.\n`);
          return 0;
        } catch (error) {
          if (error instanceof UnknownAccount || error instanceof InvitationNotNeeded) return fail(error.message);
          throw error;
        }
      });
    }

    if (action === 'add') {
      if (file !== undefined) throw new UsageError(`Unexpected argument "${file}" for "archway users add".`);
      if (text('email') === undefined) throw new UsageError('archway users add needs --email.');
      const { account, problems } = validateAccount({
        email: text('email') ?? '',
        domain: text('domain'),
        plan: text('plan'),
        role: text('role'),
        backupHost: text('backup-host'),
        paypalSubscriptionId: text('paypal-subscription-id'),
      });
      if (account === null) return fail(problems.map((p) => p.userMessage).join('\narchway users: '));
      return withDatabase(async ({ config, db, publicUrl, mail }) => {
        const hostProblem = account.backupHost === null ? null : backupHostProblem(account.backupHost, fleetNames(config));
        if (hostProblem !== null) return fail(hostProblem);
        try {
          const user = await addUser(db, account, { publicUrl, mail, now: new Date(), actor: 'cli' });
          const what = user.role === 'operator' ? 'operator' : `customer, ${user.domain}, plan ${user.plan}`;
          process.stdout.write(`Added ${user.email} (${what}). The invitation email is queued.\n`);
          return 0;
        } catch (error) {
          if (error instanceof EmailAlreadyUsed || error instanceof DomainAlreadyUsed) return fail(error.message);
          throw error;
        }
      });
    }

    if (action === 'import') {
      if (file === undefined) throw new UsageError('archway users import needs the CSV file to read.');
      let csv: string;
      try {
        csv = await readFile(file, 'utf8');
      } catch (error) {
        return fail(`cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? 'error'}).`, EX_NOINPUT);
      }
      return withDatabase(async ({ config, db, publicUrl, mail }) => {
        try {
          const users = await importUsers(db, csv, { publicUrl, mail, now: new Date(), actor: 'cli', fleet: fleetNames(config) });
          process.stdout.write(
            `Imported ${users.length} account${users.length === 1 ? '' : 's'}; ${users.length === 1 ? 'its invitation is' : 'their invitations are'} queued.\n`,
          );
          return 0;
        } catch (error) {
          if (error instanceof ImportRefused) {
            process.stderr.write(`archway users: nothing was imported from ${file}:\n${problemLines(error.problems)}\n`);
            return EX_DATAERR;
          }
          throw error;
        }
      });
    }

    if (action === 'set-host') {
      if (file !== undefined) throw new UsageError(`Unexpected argument "${file}" for "archway users set-host".`);
      const email = text('email');
      const backupHost = text('backup-host');
      if (email === undefined || backupHost === undefined) throw new UsageError('archway users set-host needs --email and --backup-host.');
      return withDatabase(async ({ config, db }) => {
        try {
          const { user, previous } = await setBackupHost(db, {
            email,
            backupHost: backupHost.trim().toLowerCase(),
            fleet: fleetNames(config),
            actor: 'cli',
            now: new Date(),
          });
          process.stdout.write(
            `Moved ${user.email} from ${previous ?? '(no backup host)'} to ${user.backupHost}; the change is in the audit log.\n`,
          );
          return 0;
        } catch (error) {
          if (error instanceof UnknownAccount || error instanceof InvalidAccountField) return fail(error.message);
          throw error;
        }
      });
    }

    if (file !== undefined) throw new UsageError(`Unexpected argument "${file}" for "archway users set-email".`);
    const current = text('email');
    const next = text('new-email');
    if (current === undefined || next === undefined) throw new UsageError('archway users set-email needs --email and --new-email.');
    return withDatabase(async ({ db, publicUrl, mail }) => {
      try {
        const { user, oldEmail } = await changeUserEmail(db, {
          currentEmail: current,
          newEmail: next,
          actor: 'cli',
          now: new Date(),
          publicUrl,
          mail,
        });
        process.stdout.write(`Changed ${oldEmail} to ${user.email}. Both addresses are told; the change is in the audit log.\n`);
        return 0;
      } catch (error) {
        if (error instanceof UnknownAccount || error instanceof EmailAlreadyUsed || error instanceof InvalidAccountField)
          return fail(error.message);
        throw error;
      }
    });
  },
};

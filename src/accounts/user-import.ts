// Imports accounts from the provider's old records (a CSV file): all rows or none, each problem named by line.
import { recordAudit } from '../users/audit.js';
import type { Kysely } from 'kysely';
import type { Database } from '../db/database.js';
import { validateAccount, type ValidAccount } from './account-fields.js';
import { backupHostProblem, EmailAlreadyUsed, inviteUser, isUniqueViolation, type LinkContext } from './account.service.js';
import { CsvSyntaxError, parseCsv } from './csv.js';
import { domainKey, takenDomains, type User } from '../users/user.repository.js';

export const IMPORT_COLUMNS = ['email', 'domain', 'plan', 'role', 'paypal_subscription_id', 'backup_host'] as const;
const REQUIRED_COLUMNS = ['email'] as const;
/** A provider's customer list is hundreds of rows; a much larger file is more likely a mistake. */
export const MAX_IMPORT_ROWS = 10_000;

export interface ImportProblem {
  line: number;
  message: string;
}

/** Nothing was written; every problem found is listed, with the line of the file it is on. */
export class ImportRefused extends Error {
  constructor(readonly problems: ImportProblem[]) {
    super(problems.map((p) => (p.line > 0 ? `line ${p.line}: ${p.message}` : p.message)).join('\n'));
    this.name = 'ImportRefused';
  }
}

interface Row {
  line: number;
  account: ValidAccount;
}

/** Checks the whole file without touching the database beyond reading which addresses exist. */
function readRows(text: string, fleet: readonly string[]): { rows: Row[]; problems: ImportProblem[] } {
  let records;
  try {
    records = parseCsv(text);
  } catch (error) {
    if (error instanceof CsvSyntaxError) return { rows: [], problems: [{ line: error.line, message: error.problem }] };
    throw error;
  }
  const [header, ...data] = records;
  if (header === undefined)
    return { rows: [], problems: [{ line: 0, message: 'The file is empty: it needs a header row and one row per account.' }] };
  const names = header.fields.map((f) => f.trim().toLowerCase());
  const problems: ImportProblem[] = [];
  for (const name of names) {
    if (!(IMPORT_COLUMNS as readonly string[]).includes(name)) {
      problems.push({ line: header.line, message: `unknown column "${name.slice(0, 60)}"; the columns are ${IMPORT_COLUMNS.join(', ')}.` });
    }
  }
  for (const name of names.filter((n, i) => names.indexOf(n) !== i))
    problems.push({ line: header.line, message: `the column "${name}" appears twice.` });
  for (const required of REQUIRED_COLUMNS) {
    if (!names.includes(required)) problems.push({ line: header.line, message: `the header has no "${required}" column.` });
  }
  if (problems.length > 0) return { rows: [], problems };
  if (data.length === 0) return { rows: [], problems: [{ line: header.line, message: 'the file has a header but no accounts.' }] };
  if (data.length > MAX_IMPORT_ROWS)
    return { rows: [], problems: [{ line: 0, message: `The file has ${data.length} rows; import at most ${MAX_IMPORT_ROWS} at a time.` }] };

  const rows: Row[] = [];
  const seen = new Map<string, number>();
  const seenDomains = new Map<string, number>();
  for (const record of data) {
    if (record.fields.length !== names.length) {
      problems.push({ line: record.line, message: `has ${record.fields.length} fields but the header has ${names.length}.` });
      continue;
    }
    const value = (name: string): string | undefined => record.fields[names.indexOf(name)];
    const { account, problems: fieldProblems } = validateAccount({
      email: value('email') ?? '',
      domain: value('domain'),
      plan: value('plan'),
      role: value('role'),
      paypalSubscriptionId: value('paypal_subscription_id'),
      backupHost: value('backup_host'),
    });
    for (const p of fieldProblems) problems.push({ line: record.line, message: p.userMessage });
    if (account === null) continue;
    const hostProblem = account.backupHost === null ? null : backupHostProblem(account.backupHost, fleet);
    if (hostProblem !== null) {
      problems.push({ line: record.line, message: hostProblem });
      continue;
    }
    const key = account.email.toLowerCase();
    const earlier = seen.get(key);
    if (earlier !== undefined) {
      problems.push({ line: record.line, message: `the email address ${account.email} is already on line ${earlier} of this file.` });
      continue;
    }
    const domainLine = account.domain === null ? undefined : seenDomains.get(domainKey(account.domain));
    if (domainLine !== undefined) {
      problems.push({ line: record.line, message: `the domain ${account.domain} is already on line ${domainLine} of this file.` });
      continue;
    }
    seen.set(key, record.line);
    if (account.domain !== null) seenDomains.set(domainKey(account.domain), record.line);
    rows.push({ line: record.line, account });
  }
  return { rows, problems };
}

/**
 * Imports every account of the CSV text and queues each invitation, in one transaction: if any
 * row is wrong (syntax, field, an address or a domain used twice or already in the portal) nothing is written
 * and every problem is reported with its line. Returns the created users in file order.
 */
export async function importUsers(
  db: Kysely<Database>,
  text: string,
  context: LinkContext & { actor: string | null; fleet: readonly string[] },
): Promise<User[]> {
  const { rows, problems } = readRows(text, context.fleet);
  if (problems.length > 0) throw new ImportRefused(problems);
  try {
    return await db.transaction().execute(async (trx) => {
      const existing = await trx
        .selectFrom('users')
        .select('email')
        .where((eb) =>
          eb(
            eb.fn('lower', ['email']),
            'in',
            rows.map((r) => r.account.email.toLowerCase()),
          ),
        )
        .execute();
      const taken = new Set(existing.map((e) => e.email.toLowerCase()));
      const domains = await takenDomains(
        trx,
        rows.flatMap((r) => (r.account.domain === null ? [] : [r.account.domain])),
      );
      const clashes = rows.flatMap((r) => [
        ...(taken.has(r.account.email.toLowerCase())
          ? [{ line: r.line, message: `there is already an account with the email address ${r.account.email}.` }]
          : []),
        ...(r.account.domain !== null && domains.has(domainKey(r.account.domain))
          ? [{ line: r.line, message: `there is already an account with the domain ${r.account.domain}.` }]
          : []),
      ]);
      if (clashes.length > 0) throw new ImportRefused(clashes);
      const users: User[] = [];
      for (const row of rows) users.push(await inviteUser(trx, row.account, context));
      await recordAudit(trx, {
        actor: context.actor,
        action: 'users.imported',
        subject: null,
        detail: { accounts: users.length },
        at: context.now,
      });
      return users;
    });
  } catch (error) {
    // Another writer took an address between the check and the insert: still nothing was written.
    if (isUniqueViolation(error))
      throw new ImportRefused([
        { line: 0, message: 'An address or domain in the file was added to the portal meanwhile; run the import again to see which.' },
      ]);
    if (error instanceof EmailAlreadyUsed) throw new ImportRefused([{ line: 0, message: error.message }]);
    throw error;
  }
}

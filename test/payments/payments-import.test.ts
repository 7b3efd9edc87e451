// `archway payments import` with PayPal's activity report: the real program, the real database, the customer's page.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_SECRETS } from '../harness/app.js';
import { runCli } from '../harness/cli.js';
import { createUser, PASSWORD } from '../harness/users.js';
import { WebClient } from '../harness/web-client.js';
import { startPortalWorld, type PortalWorld } from '../harness/world.js';
import type { User } from '../../src/users/user.repository.js';

let world: PortalWorld;
let dir: string;
let env: Record<string, string>;
let ines: User;
let otto: User;

// The report's own header (a subset of its 41 columns, in its order): most are ignored.
const HEADER =
  '\uFEFF"Date","Time","TimeZone","Name","Type","Status","Currency","Gross","Fee","Net","From Email Address","Transaction ID","Reference Txn ID","Balance"';

function row(fields: {
  date: string;
  time?: string;
  zone?: string;
  type?: string;
  status?: string;
  currency?: string;
  gross: string;
  txn: string;
  ref: string;
}): string {
  const f = { time: '10:00:00', zone: 'CET', type: 'Subscription Payment', status: 'Completed', currency: 'EUR', ...fields };
  return [
    f.date,
    f.time,
    f.zone,
    'A Customer',
    f.type,
    f.status,
    f.currency,
    f.gross,
    '-0,55',
    '11,45',
    'payer@example.net',
    f.txn,
    f.ref,
    '100,00',
  ]
    .map((v) => `"${v.replaceAll('"', '""')}"`)
    .join(',');
}

function report(name: string, rows: string[]): string {
  const file = path.join(dir, name);
  writeFileSync(file, [HEADER, ...rows].join('\r\n') + '\r\n');
  return file;
}

const payments = () =>
  world.app.ctx.database.db
    .selectFrom('payments')
    .select(['user_id', 'paid_at', 'amount', 'currency', 'status', 'reference'])
    .orderBy('reference')
    .execute();
const imports = () =>
  world.app.ctx.database.db.selectFrom('audit_log').select(['actor', 'detail']).where('action', '=', 'payments.imported').execute();
const importReport = (file: string, ...flags: string[]) => runCli(['payments', 'import', file, ...flags], { env });

beforeAll(async () => {
  world = await startPortalWorld();
  dir = mkdtempSync(path.join(tmpdir(), 'archway-payments-'));
  // The portal's whole configuration, as the operator's shell has it; this command sends no mail.
  env = {
    ARCHWAY_DATABASE_URL: world.database.url,
    ARCHWAY_SMTP_URL: 'smtp://127.0.0.1:9',
    ARCHWAY_PUBLIC_URL: 'https://portal.example.net',
    ...TEST_SECRETS,
  };
  ines = await createUser(world.app, { email: 'ines@example.net', domain: 'ines.example.org', paypalSubscriptionId: 'I-INES00000001' });
  otto = await createUser(world.app, { email: 'otto@example.net', domain: 'otto.example.org', paypalSubscriptionId: 'I-OTTO00000002' });
});
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await world.close();
});

// A European account's report: day first, comma decimals, CET.
const JANUARY = [
  row({ date: '31.01.2026', time: '00:30:00', gross: '1.234,50', txn: '1AB23456CD789012E', ref: 'I-INES00000001' }),
  row({ date: '05.01.2026', status: 'Pending', gross: '12,00', txn: '2BC34567DE890123F', ref: 'I-OTTO00000002' }),
  // A transfer to the bank and a refund (which refers to a transaction, not a subscription): not subscription payments.
  row({ date: '20.01.2026', type: 'General Withdrawal', gross: '-500,00', txn: '3CD45678EF901234G', ref: '' }),
  row({ date: '21.01.2026', type: 'Payment Refund', gross: '-12,00', txn: '4DE56789FG012345H', ref: '1AB23456CD789012E' }),
];

describe('archway payments import', () => {
  it('stores each subscription payment with its customer, in UTC, and the customer sees only their own', async () => {
    const result = await importReport(report('january.csv', JANUARY));
    expect(result.stderr).toBe('');
    expect(result.stdout).toBe(
      'Added 2 payments, updated the status of 0, 0 already stored; skipped 2 rows that are not subscription payments.\n',
    );
    expect(result.code).toBe(0);
    expect(await payments()).toEqual([
      {
        user_id: ines.id,
        paid_at: new Date('2026-01-30T23:30:00Z'),
        amount: '1234.50',
        currency: 'EUR',
        status: 'Completed',
        reference: '1AB23456CD789012E',
      },
      {
        user_id: otto.id,
        paid_at: new Date('2026-01-05T09:00:00Z'),
        amount: '12.00',
        currency: 'EUR',
        status: 'Pending',
        reference: '2BC34567DE890123F',
      },
    ]);
    expect((await imports()).at(-1)).toEqual({ actor: 'cli', detail: { added: 2, updated: 0, unchanged: 0, skipped: 2, unmatched: 0 } });

    const client = new WebClient(world.app);
    expect((await client.signIn(ines.email, PASSWORD)).status).toBe(303);
    const page = (await client.get('/account')).body;
    expect(page).toContain('<tr><td>2026-01-30</td><td>1234.50 EUR</td><td>Completed</td><td><code>1AB23456CD789012E</code></td></tr>');
    expect(page).not.toContain('2BC34567DE890123F');
  });

  it('adds nothing when the same report comes again, and follows a status a newer report changed', async () => {
    expect((await importReport(report('january-first.csv', JANUARY))).code).toBe(0);
    const before = await payments();
    const again = await importReport(report('january-again.csv', JANUARY));
    expect([again.code, again.stdout]).toEqual([
      0,
      'Added 0 payments, updated the status of 0, 2 already stored; skipped 2 rows that are not subscription payments.\n',
    ]);
    expect(await payments()).toEqual(before);

    const settled = await importReport(
      report('settled.csv', [
        row({ date: '05.01.2026', status: 'Completed', gross: '12,00', txn: '2BC34567DE890123F', ref: 'I-OTTO00000002' }),
      ]),
      '--date-order',
      'day-first',
    );
    expect([settled.code, settled.stdout]).toEqual([
      0,
      'Added 0 payments, updated the status of 1, 0 already stored; skipped 0 rows that are not subscription payments.\n',
    ]);
    expect((await payments()).find((p) => p.reference === '2BC34567DE890123F')?.status).toBe('Completed');
  });

  it('imports nothing from a report with a wrong row, and names every problem by its line', async () => {
    const before = await payments();
    const auditBefore = (await imports()).length;
    const file = report('broken.csv', [
      row({ date: '02.02.2026', gross: '12,00', txn: '5EF67890GH123456I', ref: 'I-INES00000001' }),
      row({ date: '31.02.2026', gross: '12,00', txn: '6FG78901HI234567J', ref: 'I-INES00000001' }),
      row({ date: '03.02.2026', gross: '12,5', txn: '7GH89012IJ345678K', ref: 'I-INES00000001' }),
      row({ date: '04.02.2026', currency: 'eur', zone: 'Mars/Olympus', gross: '12,00', txn: '8HI90123JK456789L', ref: 'I-INES00000001' }),
      row({ date: '05.02.2026', gross: '12,00', txn: '5EF67890GH123456I', ref: 'I-INES00000001' }),
      row({ date: '06.02.2026', gross: '12,00', txn: '9IJ01234KL567890M', ref: 'I-NOBODY0000009' }),
      row({ date: '07.02.2026', status: '=HYPERLINK("x")', gross: '12,00', txn: 'AJK12345LM678901N', ref: 'I-INES00000001' }),
      '"08.02.2026","10:00:00","CET"',
    ]);
    const result = await importReport(file);
    expect(result.code).toBe(65);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe(
      [
        `archway payments: nothing was imported from ${file}:`,
        '  line 9: has 3 fields but the header has 14.',
        '  line 3: "31.02.2026" is not a date.',
        '  line 4: "12,5" is not an amount with two decimals.',
        '  line 5: "Mars/Olympus" is not a time zone this reader knows (e.g. CET, PDT or +02:00).',
        '  line 5: "eur" is not a currency code (three capital letters).',
        '  line 6: the transaction 5EF67890GH123456I is already on line 2 of this file.',
        '  line 8: "=HYPERLINK("x")" is not a payment status.',
        '',
      ].join('\n'),
    );
    expect(await payments()).toEqual(before);
    expect(await imports()).toHaveLength(auditBefore);

    // With the rows fixed, the payment of a subscription no account has is still a problem...
    const unknown = report('unknown.csv', [
      row({ date: '14.02.2026', gross: '12,00', txn: '5EF67890GH123456I', ref: 'I-INES00000001' }),
      row({ date: '16.02.2026', gross: '12,00', txn: '9IJ01234KL567890M', ref: 'I-NOBODY0000009' }),
    ]);
    const refused = await importReport(unknown);
    expect([refused.code, refused.stderr.split('\n')[1]]).toEqual([
      65,
      '  line 3: no account has the PayPal subscription id I-NOBODY0000009.',
    ]);
    expect(await payments()).toEqual(before);

    // ... unless the operator says to leave such payments out.
    const partial = await importReport(unknown, '--skip-unmatched');
    expect([partial.code, partial.stdout]).toEqual([
      0,
      'Added 1 payment, updated the status of 0, 0 already stored; skipped 0 rows that are not subscription payments.\n' +
        'Left out 1 payment of subscriptions no account has, on lines 3.\n',
    ]);
    expect((await payments()).map((p) => p.reference)).toContain('5EF67890GH123456I');
  });

  it('asks whether the day or the month comes first when no date shows it, and checks the answer against the dates', async () => {
    const ambiguous = report('us.csv', [
      row({ date: '03/04/2026', zone: 'PDT', gross: '12.00', txn: 'BKL23456MN789012O', ref: 'I-OTTO00000002' }),
    ]);
    const asked = await importReport(ambiguous);
    expect([asked.code, asked.stderr.split('\n')[1]]).toEqual([
      65,
      '  No date in the file shows whether the day or the month comes first: say it with --date-order day-first or month-first.',
    ]);
    const told = await importReport(ambiguous, '--date-order', 'month-first');
    expect(told.code).toBe(0);
    const stored = (await payments()).find((p) => p.reference === 'BKL23456MN789012O');
    expect(stored?.paid_at).toEqual(new Date('2026-03-04T17:00:00Z'));
    expect(stored?.amount).toBe('12.00');

    const contradicted = await importReport(
      report('us-late.csv', [row({ date: '12/31/2026', zone: 'PST', gross: '1,012.00', txn: 'CLM34567NO890123P', ref: 'I-OTTO00000002' })]),
      '--date-order',
      'day-first',
    );
    expect([contradicted.code, contradicted.stderr.split('\n')[1]]).toEqual([
      65,
      '  line 2: this date can only be read month-first, but --date-order day-first was given.',
    ]);
  });

  it('refuses what is not a PayPal report, and wrong usage, before touching the database', async () => {
    const csv = path.join(dir, 'customers.csv');
    writeFileSync(csv, 'email,domain\nines@example.net,ines.example.org\n');
    const notReport = await importReport(csv);
    expect([notReport.code, notReport.stderr.split('\n')[1]]).toEqual([
      65,
      '  line 1: the header has no "Date", "Time", "TimeZone", "Status", "Currency", "Gross", "Transaction ID", "Reference Txn ID" columns; is this PayPal\'s activity report (CSV)?',
    ]);
    const unclosed = path.join(dir, 'unclosed.csv');
    writeFileSync(unclosed, `${HEADER}\n"31.01.2026,10:00:00\n`);
    expect((await importReport(unclosed)).stderr).toContain('line 2: a quoted field is not closed');
    expect((await importReport(path.join(dir, 'missing.csv'))).code).toBe(66);
    for (const args of [
      ['payments'],
      ['payments', 'export', csv],
      ['payments', 'import'],
      ['payments', 'import', csv, '--date-order', 'sideways'],
    ]) {
      const usage = await runCli(args, { env });
      expect([args.join(' '), usage.code]).toEqual([args.join(' '), 64]);
    }
  });
});

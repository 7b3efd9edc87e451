// `archway payments import`: the operator records customers' payments from PayPal's activity report.
import { readFile } from 'node:fs/promises';
import { ImportRefused } from '../accounts/user-import.js';
import { importPayments } from '../payments/payment-import.js';
import { REPORT_COLUMNS, type DateOrder } from '../payments/paypal-report.js';
import { UsageError, type Command } from './command.js';
import { problemLines, withDatabase } from './with-database.js';

/** sysexits(3): the data given was wrong, or the input file could not be read. */
const EX_DATAERR = 65;
const EX_NOINPUT = 66;
const DATE_ORDERS: DateOrder[] = ['day-first', 'month-first'];

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

export const paymentsCommand: Command = {
  name: 'payments',
  summary: "Import customers' payments from PayPal's activity report.",
  usage: `Usage:
  archway payments import REPORT.csv [--date-order day-first|month-first] [--skip-unmatched]

import  Reads PayPal's activity report (Activity > Download, CSV) and stores each subscription
        payment with the account whose PayPal subscription id it names: date, amount, currency,
        status and transaction id, nothing else. Columns used: ${REPORT_COLUMNS.join(', ')}.
        Other rows (transfers, fees, refunds, other sales) are skipped. A transaction already
        stored is not added again; its status follows the newer report. If any row is wrong
        nothing is imported, and each problem is printed with its line.
        --date-order  whether the report's dates put the day or the month first, when no
                      date in the file shows it (PayPal writes the account's locale)
        --skip-unmatched  leave out payments of subscriptions no account has, and list their lines`,
  options: {
    'date-order': { type: 'string' },
    'skip-unmatched': { type: 'boolean' },
  },
  maxPositionals: 2,
  async run({ values, positionals }) {
    const [action, file] = positionals;
    if (action !== 'import') {
      throw new UsageError(
        action === undefined
          ? 'Say what to do: archway payments import REPORT.csv.'
          : `Unknown action "${action}" for "archway payments": use import.`,
      );
    }
    if (file === undefined) throw new UsageError('archway payments import needs the report file to read.');
    const order = values['date-order'];
    if (order !== undefined && !DATE_ORDERS.includes(order as DateOrder)) {
      throw new UsageError(`--date-order must be ${DATE_ORDERS.join(' or ')}, not "${String(order)}".`);
    }
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (error) {
      process.stderr.write(`archway payments: cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? 'error'}).\n`);
      return EX_NOINPUT;
    }
    return withDatabase(async ({ db }) => {
      try {
        const result = await importPayments(db, text, {
          dateOrder: order as DateOrder | undefined,
          skipUnmatched: values['skip-unmatched'] === true,
          actor: 'cli',
          now: new Date(),
        });
        process.stdout.write(
          `Added ${plural(result.added, 'payment')}, updated the status of ${result.updated}, ${result.unchanged} already stored; ` +
            `skipped ${plural(result.skipped, 'row')} that ${result.skipped === 1 ? 'is not a subscription payment' : 'are not subscription payments'}.\n`,
        );
        if (result.unmatched.length > 0) {
          process.stdout.write(
            `Left out ${plural(result.unmatched.length, 'payment')} of subscriptions no account has, on lines ${result.unmatched.join(', ')}.\n`,
          );
        }
        return 0;
      } catch (error) {
        if (error instanceof ImportRefused) {
          process.stderr.write(`archway payments: nothing was imported from ${file}:\n${problemLines(error.problems)}\n`);
          return EX_DATAERR;
        }
        throw error;
      }
    });
  },
};

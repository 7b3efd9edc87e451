// Reads PayPal's activity report (Activity > Download, CSV): the subscription payments in it, each problem named by line.
import { CsvSyntaxError, parseCsv } from '../accounts/csv.js';

/** The report's columns this reader relies on; every other column (Fee, From Email Address, ...) is ignored. */
export const REPORT_COLUMNS = ['Date', 'Time', 'TimeZone', 'Status', 'Currency', 'Gross', 'Transaction ID', 'Reference Txn ID'] as const;

/** A report of a year's activity is a few thousand rows; PayPal itself splits files at 50,000. */
export const MAX_REPORT_ROWS = 50_000;

export type DateOrder = 'day-first' | 'month-first';

export interface ReportPayment {
  line: number;
  paidAt: Date;
  /** Two decimals, a dot, optional minus: what numeric(12,2) takes without loss. */
  amount: string;
  currency: string;
  status: string;
  transactionId: string;
  subscriptionId: string;
}

export interface ReportProblem {
  line: number;
  message: string;
}

export interface ReadReport {
  payments: ReportPayment[];
  /** Rows that are not subscription payments (bank transfers, fees, refunds, other sales). */
  skipped: number;
  problems: ReportProblem[];
}

// PayPal subscription ids (billing agreements) look like I-BW452GLLEP1G; refunds and fees refer to a transaction instead.
const SUBSCRIPTION_ID = /^I-[A-Z0-9]{6,40}$/;
const TRANSACTION_ID = /^[A-Z0-9]{6,40}$/;
const STATUS = /^[A-Za-z][A-Za-z ]{0,39}$/;
const CURRENCY = /^[A-Z]{3}$/;
const SLASHED_DATE = /^(\d{1,2})[/.](\d{1,2})[/.](\d{4})$/;
const ISO_DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
const TIME = /^(\d{1,2}):(\d{2}):(\d{2})$/;
const OFFSET = /^(?:GMT|UTC)?([+-])(\d{1,2})(?::?(\d{2}))?$/;
// Dot decimals with optional comma thousands (1,234.56), or comma decimals with optional dot or space thousands (1.234,56).
const DOT_AMOUNT = /^(-?)(\d{1,3}(?:,\d{3})*|\d+)\.(\d{2})$/;
const COMMA_AMOUNT = /^(-?)(\d{1,3}(?:[. ]\d{3})*|\d+),(\d{2})$/;
/** numeric(12,2): ten digits before the point. */
const MAX_WHOLE_DIGITS = 10;

/** The zone names PayPal writes in the TimeZone column, as offsets from UTC in minutes. */
const ZONES: Record<string, number> = {
  UTC: 0,
  GMT: 0,
  WET: 0,
  BST: 60,
  WEST: 60,
  CET: 60,
  CEST: 120,
  EET: 120,
  EEST: 180,
  MSK: 180,
  IST: 330,
  SGT: 480,
  HKT: 480,
  JST: 540,
  AEST: 600,
  AEDT: 660,
  NZST: 720,
  NZDT: 780,
  HST: -600,
  AKST: -540,
  AKDT: -480,
  PST: -480,
  PDT: -420,
  MST: -420,
  MDT: -360,
  CST: -360,
  CDT: -300,
  EST: -300,
  EDT: -240,
};

function zoneOffsetMinutes(zone: string): number | null {
  const known = ZONES[zone.toUpperCase()];
  if (known !== undefined) return known;
  const m = OFFSET.exec(zone);
  if (!m) return null;
  const minutes = Number(m[2]) * 60 + Number(m[3] ?? 0);
  return minutes > 14 * 60 ? null : (m[1] === '-' ? -1 : 1) * minutes;
}

function amountOf(gross: string): string | null {
  const m = DOT_AMOUNT.exec(gross) ?? COMMA_AMOUNT.exec(gross);
  if (!m) return null;
  const whole = m[2]!.replace(/[,. ]/g, '').replace(/^0+(?=\d)/, '');
  return whole.length > MAX_WHOLE_DIGITS ? null : `${m[1]}${whole}.${m[3]}`;
}

/**
 * The day-first or month-first reading of a file's slashed dates: a part over 12 settles it; if no
 * date does, the caller must say (`dateOrder`). PayPal writes the account's locale, 31/01/2026 or 01/31/2026.
 */
function settleDateOrder(dates: Array<{ line: number; text: string }>, asked: DateOrder | undefined): DateOrder | ReportProblem {
  let dayFirstLine: number | null = null;
  let monthFirstLine: number | null = null;
  for (const { line, text } of dates) {
    const m = SLASHED_DATE.exec(text);
    if (!m) continue;
    if (Number(m[1]) > 12) dayFirstLine ??= line;
    if (Number(m[2]) > 12) monthFirstLine ??= line;
  }
  if (dayFirstLine !== null && monthFirstLine !== null) {
    return {
      line: monthFirstLine,
      message: `the dates disagree: line ${dayFirstLine} puts the day first, this line the month.`,
    };
  }
  const seen: DateOrder | null = dayFirstLine !== null ? 'day-first' : monthFirstLine !== null ? 'month-first' : null;
  if (asked !== undefined && seen !== null && asked !== seen) {
    const line = (seen === 'day-first' ? dayFirstLine : monthFirstLine) ?? 0;
    return { line, message: `this date can only be read ${seen}, but --date-order ${asked} was given.` };
  }
  if (asked !== undefined) return asked;
  if (seen !== null) return seen;
  const anySlashed = dates.some((d) => SLASHED_DATE.test(d.text));
  return anySlashed
    ? {
        line: 0,
        message: 'No date in the file shows whether the day or the month comes first: say it with --date-order day-first or month-first.',
      }
    : 'day-first';
}

function dateOf(text: string, order: DateOrder): { year: number; month: number; day: number } | null {
  const iso = ISO_DATE.exec(text);
  const slashed = SLASHED_DATE.exec(text);
  let year: number, month: number, day: number;
  if (iso) [year, month, day] = [Number(iso[1]), Number(iso[2]), Number(iso[3])];
  else if (slashed)
    [year, month, day] =
      order === 'day-first'
        ? [Number(slashed[3]), Number(slashed[2]), Number(slashed[1])]
        : [Number(slashed[3]), Number(slashed[1]), Number(slashed[2])];
  else return null;
  const check = new Date(Date.UTC(year, month - 1, day));
  return check.getUTCFullYear() === year && check.getUTCMonth() === month - 1 && check.getUTCDate() === day ? { year, month, day } : null;
}

/** Reads the whole report; nothing in it is trusted, and every problem is listed with its line. */
export function readPayPalReport(text: string, options: { dateOrder?: DateOrder } = {}): ReadReport {
  let records;
  try {
    records = parseCsv(text);
  } catch (error) {
    if (error instanceof CsvSyntaxError) return { payments: [], skipped: 0, problems: [{ line: error.line, message: error.problem }] };
    throw error;
  }
  const [header, ...data] = records;
  if (header === undefined) return { payments: [], skipped: 0, problems: [{ line: 0, message: 'The file is empty.' }] };
  const names = header.fields.map((f) => f.trim());
  const missing = REPORT_COLUMNS.filter((c) => !names.includes(c));
  if (missing.length > 0) {
    const message = `the header has no ${missing.map((c) => `"${c}"`).join(', ')} column${missing.length > 1 ? 's' : ''}; is this PayPal's activity report (CSV)?`;
    return { payments: [], skipped: 0, problems: [{ line: header.line, message }] };
  }
  if (data.length > MAX_REPORT_ROWS) {
    return {
      payments: [],
      skipped: 0,
      problems: [{ line: 0, message: `The file has ${data.length} rows; import at most ${MAX_REPORT_ROWS} at a time.` }],
    };
  }

  const problems: ReportProblem[] = [];
  const rows = data.flatMap((record) => {
    if (record.fields.length !== names.length) {
      problems.push({ line: record.line, message: `has ${record.fields.length} fields but the header has ${names.length}.` });
      return [];
    }
    const get = (column: (typeof REPORT_COLUMNS)[number]) => (record.fields[names.indexOf(column)] ?? '').trim();
    return [{ line: record.line, get }];
  });
  const subscriptionRows = rows.filter((r) => SUBSCRIPTION_ID.test(r.get('Reference Txn ID')));
  const order = settleDateOrder(
    subscriptionRows.map((r) => ({ line: r.line, text: r.get('Date') })),
    options.dateOrder,
  );
  if (typeof order !== 'string') return { payments: [], skipped: 0, problems: [...problems, order] };

  const payments: ReportPayment[] = [];
  const seen = new Map<string, number>();
  for (const { line, get } of subscriptionRows) {
    const before = problems.length;
    const say = (message: string) => problems.push({ line, message });
    const date = dateOf(get('Date'), order);
    if (date === null) say(`"${get('Date').slice(0, 20)}" is not a date.`);
    const time = TIME.exec(get('Time'));
    if (time === null || Number(time[1]) > 23 || Number(time[2]) > 59 || Number(time[3]) > 59)
      say(`"${get('Time').slice(0, 20)}" is not a time.`);
    const offset = zoneOffsetMinutes(get('TimeZone'));
    if (offset === null) say(`"${get('TimeZone').slice(0, 20)}" is not a time zone this reader knows (e.g. CET, PDT or +02:00).`);
    const amount = amountOf(get('Gross'));
    if (amount === null) say(`"${get('Gross').slice(0, 20)}" is not an amount with two decimals.`);
    const currency = get('Currency');
    if (!CURRENCY.test(currency)) say(`"${currency.slice(0, 20)}" is not a currency code (three capital letters).`);
    const status = get('Status');
    if (!STATUS.test(status)) say(`"${status.slice(0, 40)}" is not a payment status.`);
    const transactionId = get('Transaction ID');
    if (!TRANSACTION_ID.test(transactionId)) say(`"${transactionId.slice(0, 40)}" is not a PayPal transaction id.`);
    const earlier = seen.get(transactionId);
    if (earlier !== undefined) say(`the transaction ${transactionId} is already on line ${earlier} of this file.`);
    if (problems.length > before || date === null || time === null || offset === null || amount === null) continue;
    seen.set(transactionId, line);
    const local = Date.UTC(date.year, date.month - 1, date.day, Number(time[1]), Number(time[2]), Number(time[3]));
    payments.push({
      line,
      paidAt: new Date(local - offset * 60_000),
      amount,
      currency,
      status,
      transactionId,
      subscriptionId: get('Reference Txn ID'),
    });
  }
  return { payments, skipped: rows.length - subscriptionRows.length, problems };
}

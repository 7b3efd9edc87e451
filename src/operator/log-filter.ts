// The request log's filters as the operator types them in the URL: checked, with one sentence per problem.
import { isIP } from 'node:net';
import type { LogKind, LogOutcome } from '../users/users.tables.js';

export const LOG_KINDS: readonly LogKind[] = ['sign-in', 'two-factor', 'block', 'archive', 'link', 'download', 'account'];
export const LOG_OUTCOMES: readonly LogOutcome[] = ['success', 'failure', 'blocked', 'refused', 'info'];

export interface LogFilter {
  /** An email address (any case) or an account id, as typed; resolved to an account by the route. */
  customer: string;
  /** An address or a CIDR range, as PostgreSQL's inet reads it. */
  ip: string;
  kind: LogKind | '';
  outcome: LogOutcome | '';
  /** Inclusive lower bound; null for no bound. */
  from: Date | null;
  /** Exclusive upper bound: the end of the day or minute typed. */
  until: Date | null;
}

/** The filter as typed, to refill the form and to build the URLs of other pages and the export. */
export type LogFilterText = Record<'customer' | 'ip' | 'kind' | 'outcome' | 'from' | 'to', string>;

export type ParsedLogQuery =
  | { ok: true; filter: LogFilter; text: LogFilterText; before: string | null }
  | { ok: false; text: LogFilterText; errors: Partial<Record<keyof LogFilterText | 'before', string>> };

const MAX_CUSTOMER = 254;
const DAY = /^(\d{4})-(\d{2})-(\d{2})$/;
const MINUTE = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})$/;

function single(raw: Record<string, unknown>, name: string): string | null {
  const value = raw[name];
  if (value === undefined) return '';
  return typeof value === 'string' ? value.trim() : null;
}

/** `2026-11-28` or `2026-11-28T14:30` (what a date or datetime-local field sends), in UTC; the span it names. */
export function parseUtcTime(text: string): { start: Date; end: Date } | null {
  const day = DAY.exec(text);
  const minute = MINUTE.exec(text);
  const parts = (day ?? minute)?.slice(1).map(Number);
  if (parts === undefined) return null;
  const [y, mo, d, h = 0, mi = 0] = parts as [number, number, number, number?, number?];
  const start = new Date(Date.UTC(y, mo - 1, d, h, mi));
  // Date.UTC rolls 2026-02-31 over into March: a date that does not exist is refused, not moved.
  if (start.getUTCFullYear() !== y || start.getUTCMonth() !== mo - 1 || start.getUTCDate() !== d || h > 23 || mi > 59) return null;
  if (y < 2000 || y > 9999) return null;
  return { start, end: new Date(start.getTime() + (day !== null ? 86_400_000 : 60_000)) };
}

/** An address, or an address with a prefix length that fits it (`203.0.113.0/24`, `2001:db8::/32`). */
export function isAddressOrRange(text: string): boolean {
  const [address, prefix, extra] = text.split('/');
  if (extra !== undefined || address === undefined) return false;
  const family = isIP(address);
  if (family === 0) return false;
  if (prefix === undefined) return true;
  return /^\d{1,3}$/.test(prefix) && Number(prefix) <= (family === 4 ? 32 : 128);
}

export function parseLogQuery(raw: Record<string, unknown>): ParsedLogQuery {
  const errors: Partial<Record<keyof LogFilterText | 'before', string>> = {};
  const text = {} as LogFilterText;
  for (const name of ['customer', 'ip', 'kind', 'outcome', 'from', 'to'] as const) {
    const value = single(raw, name);
    text[name] = value === null ? '' : value.slice(0, MAX_CUSTOMER + 1);
    if (value === null) errors[name] = 'Give this filter once.';
  }
  if (text.customer.length > MAX_CUSTOMER) errors.customer = `No email address is longer than ${MAX_CUSTOMER} characters.`;
  else if (/[\u0000-\u001f\u007f\s]/.test(text.customer)) errors.customer = 'An email address has no spaces or control characters.';
  if (text.ip !== '' && !isAddressOrRange(text.ip))
    errors.ip = 'Give an IP address (203.0.113.7, 2001:db8::1) or a range (203.0.113.0/24, 2001:db8::/48).';
  if (text.kind !== '' && !LOG_KINDS.includes(text.kind as LogKind)) errors.kind = 'Choose a kind from the list.';
  if (text.outcome !== '' && !LOG_OUTCOMES.includes(text.outcome as LogOutcome)) errors.outcome = 'Choose an outcome from the list.';
  const from = text.from === '' ? null : parseUtcTime(text.from);
  const to = text.to === '' ? null : parseUtcTime(text.to);
  const timeHelp = 'Give a date (2026-11-28) or a date and time (2026-11-28T14:30), in UTC.';
  if (text.from !== '' && from === null) errors.from = timeHelp;
  if (text.to !== '' && to === null) errors.to = timeHelp;
  if (from && to && to.end <= from.start) errors.to = 'The end of the range is before its start.';
  const before = single(raw, 'before');
  if (before === null || (before !== '' && !/^\d{1,18}$/.test(before)))
    errors.before = 'That page link is not valid. Start again from the newest entries.';
  if (Object.keys(errors).length > 0) return { ok: false, text, errors };
  return {
    ok: true,
    text,
    before: before === '' ? null : before,
    filter: {
      customer: text.customer,
      ip: text.ip,
      kind: text.kind as LogKind | '',
      outcome: text.outcome as LogOutcome | '',
      from: from?.start ?? null,
      until: to?.end ?? null,
    },
  };
}

/** The query string of a filtered view (empty filters left out), for links that keep it. */
export function filterQuery(text: LogFilterText, extra: Record<string, string> = {}): string {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries({ ...text, ...extra })) if (value !== '') params.set(name, value);
  const query = params.toString();
  return query === '' ? '' : `?${query}`;
}

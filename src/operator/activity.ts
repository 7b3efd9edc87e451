// Activity at a glance: the request log's hourly counts summed into series per hour or per day.
import type { Kysely } from 'kysely';
import type { Database } from '../db/database.js';
import { parseUtcTime } from './log-filter.js';

export type Bucket = 'hour' | 'day';

export interface Series {
  name: string;
  /** One count per bucket, oldest first. */
  counts: number[];
  total: number;
}

export interface Activity {
  bucket: Bucket;
  /** The start of each bucket, oldest first. */
  starts: Date[];
  series: Series[];
}

/** Which hourly counts make each series: kind, event and outcome, '*' for any. */
const SERIES: { name: string; parts: [string, string, string][] }[] = [
  {
    name: 'Sign-ins',
    parts: [
      ['sign-in', 'password', 'success'],
      ['sign-in', 'remember-me', 'success'],
      ['two-factor', 'second-step', 'success'],
    ],
  },
  {
    name: 'Failed attempts',
    parts: [
      ['sign-in', '*', 'failure'],
      ['two-factor', '*', 'failure'],
    ],
  },
  { name: 'Blocks', parts: [['block', 'started', '*']] },
  { name: 'Archive requests', parts: [['archive', 'requested', '*']] },
  { name: 'Downloads', parts: [['download', 'completed', '*']] },
];

export const MAX_HOURS = 24 * 31;
export const MAX_DAYS = 366;

export type ActivityQuery =
  { ok: true; from: Date; until: Date; bucket: Bucket; text: ActivityText } | { ok: false; text: ActivityText; error: string };
export type ActivityText = { from: string; to: string; by: string };

/** The range (whole UTC days, `to` included) and the bucket; by default the last 7 days by day. */
export function parseActivityQuery(raw: Record<string, unknown>, now: Date): ActivityQuery {
  const str = (v: unknown) => (typeof v === 'string' ? v.trim().slice(0, 16) : '');
  const today = now.toISOString().slice(0, 10);
  const weekAgo = new Date(now.getTime() - 6 * 86_400_000).toISOString().slice(0, 10);
  const text = { from: str(raw.from) || weekAgo, to: str(raw.to) || today, by: str(raw.by) || 'day' };
  const from = parseUtcTime(text.from);
  const to = parseUtcTime(text.to);
  if (from === null || to === null || text.from.length !== 10 || text.to.length !== 10)
    return { ok: false, text, error: 'Give the range as two dates, like 2026-11-01 and 2026-11-28 (UTC).' };
  if (text.by !== 'hour' && text.by !== 'day') return { ok: false, text, error: 'Count per hour or per day.' };
  if (to.end <= from.start) return { ok: false, text, error: 'The end of the range is before its start.' };
  const buckets = (to.end.getTime() - from.start.getTime()) / (text.by === 'hour' ? 3_600_000 : 86_400_000);
  const max = text.by === 'hour' ? MAX_HOURS : MAX_DAYS;
  if (buckets > max)
    return { ok: false, text, error: text.by === 'hour' ? 'Per hour, show at most 31 days.' : 'Per day, show at most a year.' };
  return { ok: true, from: from.start, until: to.end, bucket: text.by, text };
}

export async function readActivity(db: Kysely<Database>, from: Date, until: Date, bucket: Bucket): Promise<Activity> {
  const rows = await db
    .selectFrom('request_log_hourly')
    .select(['hour', 'kind', 'event', 'outcome', 'n'])
    .where('hour', '>=', from)
    .where('hour', '<', until)
    .execute();
  const size = bucket === 'hour' ? 3_600_000 : 86_400_000;
  const length = Math.round((until.getTime() - from.getTime()) / size);
  const starts = Array.from({ length }, (_, i) => new Date(from.getTime() + i * size));
  const series = SERIES.map(({ name, parts }) => {
    const counts = new Array<number>(length).fill(0);
    for (const row of rows) {
      const match = parts.some(([k, e, o]) => k === row.kind && (e === '*' || e === row.event) && (o === '*' || o === row.outcome));
      if (match) counts[Math.floor((row.hour.getTime() - from.getTime()) / size)]! += Number(row.n);
    }
    return { name, counts, total: counts.reduce((a, b) => a + b, 0) };
  });
  return { bucket, starts, series };
}

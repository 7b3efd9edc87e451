// How archive sizes, times and states read on the pages and in the emails.
import { formatBytes, formatUtc } from '../format.js';
import type { ArchiveRequestState } from './archives.tables.js';

const STATE_WORDS: Record<ArchiveRequestState, string> = {
  requested: 'asked for',
  building: 'being made',
  ready: 'ready to download',
  failed: 'could not be made',
  cancelled: 'cancelled',
  downloaded: 'downloaded',
  expired: 'expired',
};

export function describeState(state: ArchiveRequestState): string {
  return STATE_WORDS[state];
}

const plural = (n: number, unit: string) => `${n} ${unit}${n === 1 ? '' : 's'}`;

/** A wait as the backups page says it: "in 5 minutes", "in 23 hours and 40 minutes" (rounded up to the minute). */
export function describeWait(ms: number): string {
  const minutes = Math.max(1, Math.ceil(ms / 60_000));
  if (minutes < 60) return `in ${plural(minutes, 'minute')}`;
  const rest = minutes % 60;
  return `in ${plural(Math.floor(minutes / 60), 'hour')}${rest === 0 ? '' : ` and ${plural(rest, 'minute')}`}`;
}

/** How long ago, for the operator: "12 seconds ago", "5 minutes ago", "3 hours ago". */
export function describeAge(ms: number): string {
  const seconds = Math.max(0, Math.floor(ms / 1000));
  if (seconds < 120) return `${plural(seconds, 'second')} ago`;
  if (seconds < 7200) return `${plural(Math.floor(seconds / 60), 'minute')} ago`;
  return `${plural(Math.floor(seconds / 3600), 'hour')} ago`;
}

/** What the archive and download views call to show sizes, times and states. */
export const archiveViewHelpers = { fmt: formatUtc, formatBytes, describeState };

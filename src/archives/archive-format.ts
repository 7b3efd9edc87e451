// How archive sizes, times and states read on the pages and in the emails.
import type { ArchiveRequestState } from './archives.tables.js';

const UNITS = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];

/** 1536 -> "1.5 KiB"; exact byte counts are shown next to it where they matter (the SHA-256 check). */
export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${bytes} bytes` : `${value.toFixed(1)} ${UNITS[unit]}`;
}

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

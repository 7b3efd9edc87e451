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

// The append-only event log: one JSON line per event, seq without gaps, fsync before the call returns.
import { closeSync, fstatSync, fsyncSync, openSync, readSync, writeSync, createReadStream, existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import type { DeliveredSoFar, DispatcherEvent, EventType } from '../../protocol/index.js';
import { nowIso } from './clock.js';
import type { DispatcherConfig } from './config.js';
import { paths } from './layout.js';
import { withMutex } from './lock.js';

export interface NewEvent {
  type: EventType;
  customer: string;
  archiveId: string;
  ip?: string | null;
  bytes?: number | null;
  detail?: string | null;
  delivered?: DeliveredSoFar;
  /** Position in the download log that produced this event; watch resumes after it (never shown). */
  src?: { ino: number; end: number };
}

interface StoredEvent extends DispatcherEvent {
  src?: { ino: number; end: number };
}

/** Reads the last complete line of the log (a torn line from a crash is ignored). */
function lastStored(fd: number): { event: StoredEvent | null; endsWithNewline: boolean } {
  const size = fstatSync(fd).size;
  if (size === 0) return { event: null, endsWithNewline: true };
  let window = 4096;
  for (;;) {
    const start = Math.max(0, size - window);
    const buf = Buffer.alloc(size - start);
    readSync(fd, buf, 0, buf.length, start);
    const endsWithNewline = buf[buf.length - 1] === 0x0a;
    const lines = buf.toString('utf8').split('\n');
    // The first piece may be cut unless we read from the file's start.
    for (let i = lines.length - 1; i >= (start === 0 ? 0 : 1); i--) {
      const line = lines[i];
      if (!line) continue;
      try {
        const ev = JSON.parse(line) as StoredEvent;
        if (Number.isSafeInteger(ev.seq)) return { event: ev, endsWithNewline };
      } catch {
        // torn or foreign line: keep looking backwards
      }
    }
    if (start === 0) return { event: null, endsWithNewline };
    window *= 4;
  }
}

export function appendEvent(cfg: DispatcherConfig, ev: NewEvent): number {
  return withMutex(paths.eventsMutex(cfg), () => {
    const fd = openSync(paths.eventsLog(cfg), 'a+', 0o600);
    try {
      const { event: last, endsWithNewline } = lastStored(fd);
      const seq = (last?.seq ?? 0) + 1;
      const stored: StoredEvent = {
        seq,
        time: nowIso(),
        type: ev.type,
        customer: ev.customer,
        archiveId: ev.archiveId,
        ip: ev.ip ?? null,
        bytes: ev.bytes ?? null,
        detail: ev.detail ?? null,
        ...(ev.delivered ? { delivered: ev.delivered } : {}),
        ...(ev.src ? { src: ev.src } : {}),
      };
      writeSync(fd, `${endsWithNewline ? '' : '\n'}${JSON.stringify(stored)}\n`);
      fsyncSync(fd);
      return seq;
    } finally {
      closeSync(fd);
    }
  });
}

/** How far back from the event log's end watch looks for its last position (the saved state covers older ones). */
const LAST_POSITION_WINDOW = 4 << 20;

/** The newest download-log position recorded in an event, so watch never counts a line twice. */
export function lastWatchPosition(cfg: DispatcherConfig): { ino: number; end: number } | null {
  if (!existsSync(paths.eventsLog(cfg))) return null;
  let found: { ino: number; end: number } | null = null;
  const fd = openSync(paths.eventsLog(cfg), 'r');
  try {
    // Scan backwards in growing windows until an event with a source position appears, but only
    // so far: on a years-old log with no recent download, watch would otherwise read all of it.
    const size = fstatSync(fd).size;
    let window = 65536;
    while (found === null && window <= LAST_POSITION_WINDOW) {
      const start = Math.max(0, size - window);
      const buf = Buffer.alloc(size - start);
      readSync(fd, buf, 0, buf.length, start);
      const lines = buf.toString('utf8').split('\n');
      for (let i = lines.length - 1; i >= (start === 0 ? 0 : 1) && found === null; i--) {
        try {
          const ev = JSON.parse(lines[i] ?? '') as StoredEvent;
          if (ev.src) found = ev.src;
        } catch {
          // skip
        }
      }
      if (start === 0) break;
      window *= 4;
    }
  } finally {
    closeSync(fd);
  }
  return found;
}

/** Offset of the first newline at or after `from`, or -1; reads forward in small chunks. */
function newlineFrom(fd: number, size: number, from: number): number {
  const buf = Buffer.alloc(4096);
  for (let pos = from; pos < size; pos += buf.length) {
    const n = readSync(fd, buf, 0, Math.min(buf.length, size - pos), pos);
    const i = buf.subarray(0, n).indexOf(0x0a);
    if (i !== -1) return pos + i;
  }
  return -1;
}

/** The first readable event whose line starts at or after `pos` (torn and foreign lines skipped), with that offset. */
function firstEventFrom(fd: number, size: number, pos: number): { start: number; seq: number } | null {
  let start = pos;
  if (pos > 0) {
    // pos may fall inside a line: that line belongs to an earlier position.
    const nl = newlineFrom(fd, size, pos - 1);
    if (nl === -1) return null;
    start = nl + 1;
  }
  while (start < size) {
    const end = newlineFrom(fd, size, start);
    const line = Buffer.alloc((end === -1 ? size : end) - start);
    readSync(fd, line, 0, line.length, start);
    try {
      const ev = JSON.parse(line.toString('utf8')) as StoredEvent;
      if (Number.isSafeInteger(ev.seq)) return { start, seq: ev.seq };
    } catch {
      // torn or foreign line: try the next one
    }
    if (end === -1) return null;
    start = end + 1;
  }
  return null;
}

/**
 * Where the first event after `after` starts. The log only grows and its lines are in seq order,
 * so a binary search over byte offsets finds it in about 30 small reads, however long the log:
 * the portal asks every few seconds, and reading the whole history each time would not scale.
 */
function offsetOfFirstAfter(fd: number, size: number, after: number): number | null {
  let lo = 0;
  let hi = size;
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    const ev = firstEventFrom(fd, size, mid);
    if (ev === null || ev.seq > after) hi = mid;
    else lo = mid + 1;
  }
  const first = firstEventFrom(fd, size, lo);
  return first !== null && first.seq > after ? first.start : null;
}

export async function eventsSince(
  cfg: DispatcherConfig,
  after: number,
  limit: number,
): Promise<{ events: DispatcherEvent[]; lastSeq: number }> {
  const events: DispatcherEvent[] = [];
  if (!existsSync(paths.eventsLog(cfg))) return { events, lastSeq: 0 };
  const fd = openSync(paths.eventsLog(cfg), 'r');
  let start: number | null;
  let newest: number;
  try {
    const size = fstatSync(fd).size;
    start = offsetOfFirstAfter(fd, size, after);
    newest = lastStored(fd).event?.seq ?? 0;
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  // Nothing new: the newest seq, which is always safe to pass back as the next `after`.
  if (start === null) {
    closeSync(fd);
    return { events, lastSeq: newest };
  }
  let lastSeq = after;
  // The same open file: sweep may rename an anonymised copy over the log, where this offset means another line.
  const input = createReadStream('', { fd, encoding: 'utf8', start });
  const rl = createInterface({ input, crlfDelay: Infinity });
  for await (const line of rl) {
    let ev: StoredEvent;
    try {
      ev = JSON.parse(line) as StoredEvent;
    } catch {
      continue;
    }
    if (!Number.isSafeInteger(ev.seq) || ev.seq <= after) continue;
    const { src: _src, ...pub } = ev;
    events.push(pub);
    lastSeq = ev.seq;
    if (events.length >= limit) break;
  }
  rl.close();
  input.destroy();
  return { events, lastSeq };
}

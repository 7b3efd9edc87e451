// The append-only event log: one JSON line per event, seq without gaps, fsync before the call returns.
import { closeSync, fstatSync, fsyncSync, openSync, readSync, writeSync, createReadStream, existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import type { DispatcherEvent, EventType } from '../protocol/index.js';
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

/** The newest download-log position recorded in an event, so watch never counts a line twice. */
export function lastWatchPosition(cfg: DispatcherConfig): { ino: number; end: number } | null {
  if (!existsSync(paths.eventsLog(cfg))) return null;
  let found: { ino: number; end: number } | null = null;
  const fd = openSync(paths.eventsLog(cfg), 'r');
  try {
    // Scan backwards in growing windows until an event with a source position appears.
    const size = fstatSync(fd).size;
    let window = 65536;
    while (found === null) {
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

export async function eventsSince(cfg: DispatcherConfig, after: number, limit: number): Promise<{ events: DispatcherEvent[]; lastSeq: number }> {
  const events: DispatcherEvent[] = [];
  let lastSeq = 0;
  if (!existsSync(paths.eventsLog(cfg))) return { events, lastSeq };
  const rl = createInterface({ input: createReadStream(paths.eventsLog(cfg), { encoding: 'utf8' }), crlfDelay: Infinity });
  for await (const line of rl) {
    let ev: StoredEvent;
    try {
      ev = JSON.parse(line) as StoredEvent;
    } catch {
      continue;
    }
    if (!Number.isSafeInteger(ev.seq)) continue;
    lastSeq = ev.seq;
    if (ev.seq > after) {
      const { src: _src, ...pub } = ev;
      events.push(pub);
      if (events.length >= limit) break;
    }
  }
  rl.close();
  // lastSeq is always safe to pass as the next `after`: the last event returned, else the newest seen.
  return { events, lastSeq };
}

// The dispatcher's clock: wall time, shifted only in the test bundle so expiry can be checked without waiting.
import { clockOffsetMs } from './test-seams.js';

let offsetMs: number | null = null;

function offset(): number {
  offsetMs ??= clockOffsetMs();
  return offsetMs;
}

export function nowMs(): number {
  return Date.now() + offset();
}

export function nowSeconds(): number {
  return Math.floor(nowMs() / 1000);
}

export function nowIso(): string {
  return new Date(nowMs()).toISOString();
}

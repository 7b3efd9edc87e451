// The dispatcher's clock: wall time, shifted only in tests so expiry can be checked without waiting.

let offsetMs: number | null = null;

function offset(): number {
  if (offsetMs !== null) return offsetMs;
  offsetMs = 0;
  // Honoured only with an explicit config path: under sudo env_reset a remote caller can set neither.
  const raw = process.env.ARCHWAY_DISPATCHER_NOW_OFFSET;
  if (process.env.ARCHWAY_DISPATCHER_CONFIG && raw && /^-?\d{1,10}$/.test(raw)) offsetMs = Number(raw) * 1000;
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

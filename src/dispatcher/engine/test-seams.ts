// Test seams (a shifted clock, a pretended free space): compiled into the test bundle only; the shipped bundle has none.
// scripts/build-dispatcher.mjs defines __TEST_SEAMS__ as false for the shipped bundle, so the code below folds away.
declare const __TEST_SEAMS__: boolean | undefined;
const SEAMS = typeof __TEST_SEAMS__ === 'boolean' && __TEST_SEAMS__;

// Honoured only with an explicit config path, as a second guard: under sudo env_reset a caller can set neither.
function seamValue(name: string, pattern: RegExp): string | null {
  const raw = process.env[name];
  return process.env.ARCHWAY_DISPATCHER_CONFIG && raw && pattern.test(raw) ? raw : null;
}

/** Milliseconds the test clock runs ahead (or behind); always 0 in the shipped bundle. */
export function clockOffsetMs(): number {
  if (!SEAMS) return 0;
  const raw = seamValue('ARCHWAY_DISPATCHER_NOW_OFFSET', /^-?\d{1,10}$/);
  return raw === null ? 0 : Number(raw) * 1000;
}

/** Free bytes a test pretends the archive disk has, or null; always null in the shipped bundle. */
export function pretendedFreeBytes(): number | null {
  if (!SEAMS) return null;
  const raw = seamValue('ARCHWAY_DISPATCHER_FAKE_FREE_BYTES', /^\d{1,16}$/);
  return raw === null ? null : Number(raw);
}

/** Seam variables the detached builder inherits, so its clock matches the call that started it. */
export const SEAM_ENV: readonly string[] = SEAMS ? ['ARCHWAY_DISPATCHER_NOW_OFFSET'] : [];

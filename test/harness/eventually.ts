// The one way tests wait for something to happen: poll a probe until it gives an answer, or fail naming what never came.

export interface EventuallyOptions {
  /** How long to keep asking (default 20 s). */
  timeoutMs?: number;
  /** The pause between two asks (default 50 ms). */
  everyMs?: number;
  /** Added to the failure: what the watched program said, the usual reason for a wait that never ends. */
  explain?: () => string;
}

/**
 * Polls `probe` until it returns something other than undefined, null or false, and returns that;
 * past the timeout, fails with "timed out waiting for <what>" and the last value seen.
 */
export async function eventually<T>(
  what: string,
  probe: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  options: EventuallyOptions = {},
): Promise<T> {
  const deadline = Date.now() + (options.timeoutMs ?? 20_000);
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== null && value !== false) return value;
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what} (last seen: ${String(value)})${options.explain ? `\n${options.explain()}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, options.everyMs ?? 50));
  }
}

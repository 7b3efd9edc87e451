// The loop every background job of `archway serve` runs in: one step at a time, a pause between, a clean stop.

/**
 * Runs `step` again and again until stopped; each step returns how long to wait before the next
 * one (0: at once, e.g. while there is a backlog). The returned stopper wakes a waiting loop and
 * resolves once the step in hand has finished, so the database pool is never closed under it.
 * A step handles its own errors: one that throws would end the loop.
 */
export function startLoop(step: () => Promise<number>): () => Promise<void> {
  let stopped = false;
  let wake: () => void = () => undefined;
  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  const loop = (async () => {
    while (!stopped) {
      const delayMs = await step();
      if (!stopped && delayMs > 0) await pause(delayMs);
    }
  })();
  return async () => {
    stopped = true;
    wake();
    await loop;
  };
}

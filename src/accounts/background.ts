// Work a request starts but does not wait for (the reset email), tracked so shutdown and tests can wait for it.
import type { FastifyInstance } from 'fastify';

const pending = new WeakMap<FastifyInstance, Set<Promise<void>>>();

/** Runs the task after the response; a failure is logged, never shown to the person who asked. */
export function runInBackground(app: FastifyInstance, name: string, task: () => Promise<unknown>): void {
  let set = pending.get(app);
  if (set === undefined) {
    set = new Set();
    pending.set(app, set);
  }
  const tracked = set;
  const promise: Promise<void> = new Promise<void>((resolve) => setImmediate(resolve))
    .then(task)
    .then(
      () => undefined,
      (error: unknown) => app.log.error({ err: error, task: name }, 'background task failed'),
    )
    .finally(() => tracked.delete(promise));
  tracked.add(promise);
}

/** Resolves when every task started so far (and any they started) has finished. */
export async function settleBackgroundWork(app: FastifyInstance): Promise<void> {
  const set = pending.get(app);
  while (set !== undefined && set.size > 0) await Promise.all([...set]);
}

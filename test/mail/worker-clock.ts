// The mail worker's clock in tests: counts the worker's reads, so a test waits until the worker looked at the queue again instead of sleeping.
import { eventually } from '../harness/eventually.js';

export interface WorkerClock {
  now: () => Date;
  /** Resolves once the worker has made one whole claim (query and answer) that began after this call. */
  lookedAgain(): Promise<void>;
}

/**
 * An idle worker step reads the clock twice: before it claims, and once the claim came back empty.
 * Any three reads after a moment therefore hold one whole claim that began after it.
 */
export function workerClock(read: () => Date = () => new Date()): WorkerClock {
  let reads = 0;
  return {
    now() {
      reads += 1;
      return read();
    },
    async lookedAgain() {
      const from = reads;
      await eventually('the mail worker to look at the queue again', () => reads >= from + 3);
    },
  };
}

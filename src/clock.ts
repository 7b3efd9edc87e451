// The app's notion of "now", one object so tests can move time for sessions, blocks and token expiry.

export interface Clock {
  now(): Date;
}

/** Production: the system clock. */
export const systemClock: Clock = { now: () => new Date() };

/**
 * A clock that runs with real time plus an offset tests can move forward; it keeps running, so
 * code that compares two readings still sees time pass.
 */
export class AdjustableClock implements Clock {
  private offsetMs = 0;

  now(): Date {
    return new Date(Date.now() + this.offsetMs);
  }

  advance(ms: number): void {
    this.offsetMs += ms;
  }

  advanceMinutes(minutes: number): void {
    this.advance(minutes * 60_000);
  }
}

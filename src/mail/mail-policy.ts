// How often a message is retried and how long its record is kept: read by the worker, the link mailer and the account page.

/**
 * 10 attempts, waits doubling from 1 minute up to 1 hour: the last attempt is about 4 hours
 * after the first, which outlasts a relay's restart or a short outage; a reset link in it
 * expires after 1 hour anyway, an invitation does not.
 */
export const MAIL_RETRY = { maxAttempts: 10, firstDelayMs: 60_000, maxDelayMs: 60 * 60_000 } as const;

/** Finished rows (recipient, template, outcome; never a body) are kept this long for the operator, then deleted. */
export const FINISHED_MAIL_KEPT_DAYS = 30;

export function retryDelayMs(failedAttempts: number): number {
  return Math.min(MAIL_RETRY.firstDelayMs * 2 ** (failedAttempts - 1), MAIL_RETRY.maxDelayMs);
}

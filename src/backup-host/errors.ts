// Named errors of the portal's backup-host client; each carries a message safe to show a customer.

/** Base class: `message` is for the operator's log (never a token), `userMessage` for a customer. */
export class BackupHostError extends Error {
  readonly userMessage: string;
  constructor(message: string, userMessage = 'The backup service is not available right now. Please try again in a few minutes.') {
    super(message);
    this.name = new.target.name;
    this.userMessage = userMessage;
  }
}

/** The client is set up wrongly (missing key file, wrong passphrase, malformed fingerprint). */
export class BackupHostConfigError extends BackupHostError {}

/** No answer: connection refused, timed out, authentication refused, or the connection dropped. */
export class BackupHostUnreachable extends BackupHostError {}

/** The connection or the call took longer than allowed. */
export class BackupHostTimeout extends BackupHostUnreachable {}

/**
 * The backup host presented a host key other than the pinned one. Never retried and never
 * "accepted once": either the host was reinstalled (the operator re-pins) or someone is in between.
 */
export class BackupHostKeyMismatch extends BackupHostUnreachable {
  readonly expected: string;
  readonly presented: string;
  constructor(expected: string, presented: string) {
    super(`backup host key mismatch: pinned ${expected}, presented ${presented}; refusing to talk to it`);
    this.expected = expected;
    this.presented = presented;
  }
}

/** The dispatcher (or the gate) refused the request (exit 1): bad request, not allowed, not found. */
export class BackupHostRefused extends BackupHostError {
  readonly code: 'refused' | 'not_found';
  constructor(code: 'refused' | 'not_found', dispatcherMessage: string) {
    // The dispatcher's messages are written to be user-safe (contract), so they pass through.
    super(`backup host refused the call (${code}): ${dispatcherMessage}`, dispatcherMessage);
    this.code = code;
  }
}

/** The dispatcher failed (exit 2), or its answer was not the one JSON envelope we expect. */
export class BackupHostInternalError extends BackupHostError {}

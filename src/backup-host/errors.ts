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
  readonly code: 'refused' | 'not_found' | 'quota' | 'busy';
  constructor(code: 'refused' | 'not_found' | 'quota' | 'busy', dispatcherMessage: string, userMessage = dispatcherMessage) {
    // The dispatcher's messages are written to be user-safe (contract), so they pass through.
    super(`backup host refused the call (${code}): ${dispatcherMessage}`, userMessage);
    this.code = code;
  }
}

const HOST_BUSY_MESSAGE = 'The backup service is handling too many requests right now. Please try again in an hour.';

/**
 * A limit the backup host holds by itself (see docs/BACKUP-HOST.md): `quota` is this customer's
 * (the dispatcher's message says which, and what to do), `busy` the host-wide rate. Not final:
 * the same request works once the limit has passed, so a download token stays usable.
 */
export class BackupHostLimited extends BackupHostRefused {
  constructor(code: 'quota' | 'busy', dispatcherMessage: string) {
    super(code, dispatcherMessage, code === 'busy' ? HOST_BUSY_MESSAGE : dispatcherMessage);
  }
}

/** The dispatcher failed (exit 2), or its answer was not the one JSON envelope we expect. */
export class BackupHostInternalError extends BackupHostError {}

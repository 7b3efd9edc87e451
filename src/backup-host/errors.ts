// Named errors of the portal's backup-host client; each carries a message safe to show a customer.
import type { ErrorCode, RefusalReason } from '../protocol/index.js';
import { refusalWording, UNAVAILABLE_WORDING } from './refusal-wording.js';

/** Base class: `message` is for the operator's log (never a token), `userMessage` for a customer. */
export class BackupHostError extends Error {
  readonly userMessage: string;
  constructor(message: string, userMessage = UNAVAILABLE_WORDING) {
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
  readonly code: Exclude<ErrorCode, 'internal'>;
  readonly reason: RefusalReason;
  constructor(code: Exclude<ErrorCode, 'internal'>, reason: RefusalReason, operatorMessage: string) {
    // The dispatcher sends a reason and an operator's line; the customer reads the portal's words for the reason.
    super(`backup host refused the call (${reason}): ${operatorMessage}`, refusalWording(reason));
    this.code = code;
    this.reason = reason;
  }
}

/**
 * A limit the backup host holds by itself (see docs/BACKUP-HOST.md): `quota` is this customer's
 * (the reason says which), `busy` the host-wide rate. Not final: the same request works once the
 * limit has passed, so a download token stays usable.
 */
export class BackupHostLimited extends BackupHostRefused {
  constructor(code: 'quota' | 'busy', reason: RefusalReason, operatorMessage: string) {
    super(code, reason, operatorMessage);
  }
}

/** The dispatcher failed (exit 2), or its answer was not the one JSON envelope we expect. */
export class BackupHostInternalError extends BackupHostError {}

// The one way a dispatcher call ends early: a failure carrying a reason, an operator's message and a log detail.
import type { RefusalReason } from '../../protocol/index.js';

// What the portal's log shows for each reason; the customer's words are the portal's (refusal-wording.ts).
const OPERATOR_MESSAGES: Readonly<Record<RefusalReason, string>> = {
  unknown_action: 'unknown action',
  bad_request: 'bad request',
  build_running: 'a build for this customer is still running',
  no_space: 'not enough free space in the archive root for this snapshot',
  not_ready: 'the archive is not ready',
  downloaded: 'the archive was already downloaded',
  expired: 'the archive is past its retention',
  bad_token: 'the token does not match the newest armed one',
  outside_backup: 'the snapshot resolves outside the customer directory',
  already_running: 'already running',
  not_found: 'no such archive for this customer',
  no_backups: 'no backup directory for this customer',
  no_such_backup: 'no such snapshot',
  quota_ready: 'the customer has as many ready archives as allowed',
  quota_builds: 'the customer reached the archive.create limit per day',
  quota_links: 'the customer reached the link.issue limit per hour',
  busy: 'the host-wide rate is reached',
  misconfigured: 'the backup host is not configured correctly; see the call log',
  internal: 'the backup host could not complete the request; see the call log',
};

export class DispatcherFailure extends Error {
  /** What the caller reads next to the reason: never a token, a path or another customer's name. */
  readonly operatorMessage: string;
  constructor(
    readonly reason: RefusalReason,
    operatorMessage: string | null,
    readonly logDetail: string,
  ) {
    super(logDetail);
    this.name = 'DispatcherFailure';
    this.operatorMessage = operatorMessage ?? OPERATOR_MESSAGES[reason];
  }
}

/** Refuses the call: the caller gets the reason and its operator line (or `message`), the call log gets logDetail. */
export function fail(reason: RefusalReason, logDetail: string, message: string | null = null): never {
  throw new DispatcherFailure(reason, message, logDetail);
}

/** Not-found has the same reason for "missing" and "someone else's". */
export function notFound(logDetail: string): never {
  fail('not_found', logDetail);
}

export function internal(logDetail: string): never {
  fail('internal', logDetail);
}

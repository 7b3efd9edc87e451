// The one answer envelope every dispatcher call prints, and the exit code that goes with it.
import { EXIT_DONE, EXIT_INTERNAL, EXIT_REFUSED } from './actions.js';

/**
 * refused/not_found: this request may not be done; quota: this customer reached a limit the backup
 * host sets (ready archives, builds per day, links per hour); busy: the host-wide rate is reached.
 */
export type ErrorCode = 'refused' | 'not_found' | 'quota' | 'busy' | 'internal';

/**
 * Why the dispatcher did not do a call, as a fixed word, each with its one code. The portal words
 * each reason for the customer (src/backup-host/refusal-wording.ts); the dispatcher writes no such words.
 */
export const REFUSAL_REASONS = {
  unknown_action: 'refused',
  bad_request: 'refused',
  build_running: 'refused',
  no_space: 'refused',
  not_ready: 'refused',
  downloaded: 'refused',
  expired: 'refused',
  bad_token: 'refused',
  outside_backup: 'refused',
  already_running: 'refused',
  not_found: 'not_found',
  no_backups: 'not_found',
  no_such_backup: 'not_found',
  quota_ready: 'quota',
  quota_builds: 'quota',
  quota_links: 'quota',
  busy: 'busy',
  misconfigured: 'internal',
  internal: 'internal',
} as const satisfies Record<string, ErrorCode>;
export type RefusalReason = keyof typeof REFUSAL_REASONS;

export function isRefusalReason(v: unknown): v is RefusalReason {
  return typeof v === 'string' && Object.prototype.hasOwnProperty.call(REFUSAL_REASONS, v);
}

export interface OkAnswer<R> {
  ok: true;
  result: R;
}
/** `message` is for the operator's log (never a token, a path or another customer's name), never for a customer. */
export interface ErrorAnswer {
  ok: false;
  error: { code: ErrorCode; reason: RefusalReason; message: string };
}
export type Answer<R> = OkAnswer<R> | ErrorAnswer;

export function okAnswer<R>(result: R): OkAnswer<R> {
  return { ok: true, result };
}

export function errorAnswer(reason: RefusalReason, message: string): ErrorAnswer {
  return { ok: false, error: { code: REFUSAL_REASONS[reason], reason, message } };
}

/** not_found is a refusal too: the caller asked for something it may not have. */
export function exitCodeFor(answer: Answer<unknown>): number {
  if (answer.ok) return EXIT_DONE;
  return answer.error.code === 'internal' ? EXIT_INTERNAL : EXIT_REFUSED;
}

/**
 * Parses the dispatcher's stdout on the portal side. Returns null when it is not exactly one
 * envelope, so a garbled or hostile answer is never mistaken for a result.
 */
export function parseAnswer(text: string): Answer<unknown> | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  return answerFrom(value);
}

/** The same check for an envelope already parsed (each entry of an `archive.statuses` answer is one). */
export function answerFrom(value: unknown): Answer<unknown> | null {
  if (!isPlainObject(value)) return null;
  const keys = Object.keys(value).sort().join(',');
  if (value.ok === true && keys === 'ok,result' && isPlainObject(value.result)) {
    return { ok: true, result: value.result };
  }
  if (value.ok === false && keys === 'error,ok' && isPlainObject(value.error)) {
    const { code, reason, message } = value.error;
    // A reason outside the union, or with a code other than its own, is as garbled as no answer.
    const exact = Object.keys(value.error).sort().join(',') === 'code,message,reason';
    if (exact && isRefusalReason(reason) && code === REFUSAL_REASONS[reason] && typeof message === 'string') {
      return errorAnswer(reason, message);
    }
  }
  return null;
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

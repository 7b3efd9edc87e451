// The one answer envelope every dispatcher call prints, and the exit code that goes with it.
import { EXIT_DONE, EXIT_INTERNAL, EXIT_REFUSED } from './actions.js';

/**
 * refused/not_found: this request may not be done; quota: this customer reached a limit the backup
 * host sets (ready archives, builds per day, links per hour); busy: the host-wide rate is reached.
 */
export type ErrorCode = 'refused' | 'not_found' | 'quota' | 'busy' | 'internal';

export interface OkAnswer<R> {
  ok: true;
  result: R;
}
export interface ErrorAnswer {
  ok: false;
  error: { code: ErrorCode; message: string };
}
export type Answer<R> = OkAnswer<R> | ErrorAnswer;

export function okAnswer<R>(result: R): OkAnswer<R> {
  return { ok: true, result };
}

export function errorAnswer(code: ErrorCode, message: string): ErrorAnswer {
  return { ok: false, error: { code, message } };
}

/** not_found is a refusal too: the caller asked for something it may not have. */
export function exitCodeFor(answer: Answer<unknown>): number {
  if (answer.ok) return EXIT_DONE;
  return answer.error.code === 'internal' ? EXIT_INTERNAL : EXIT_REFUSED;
}

const ERROR_CODES: ReadonlySet<string> = new Set(['refused', 'not_found', 'quota', 'busy', 'internal']);

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
  if (!isPlainObject(value)) return null;
  const keys = Object.keys(value).sort().join(',');
  if (value.ok === true && keys === 'ok,result' && isPlainObject(value.result)) {
    return { ok: true, result: value.result };
  }
  if (value.ok === false && keys === 'error,ok' && isPlainObject(value.error)) {
    const { code, message } = value.error;
    if (typeof code === 'string' && ERROR_CODES.has(code) && typeof message === 'string') {
      return errorAnswer(code as ErrorCode, message);
    }
  }
  return null;
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

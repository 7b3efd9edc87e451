// The one way a dispatcher call ends early: a failure carrying a user-safe message and a log detail.
import type { ErrorCode } from '../../protocol/index.js';

export class DispatcherFailure extends Error {
  constructor(
    readonly code: ErrorCode,
    readonly userMessage: string,
    readonly logDetail: string,
  ) {
    super(logDetail);
    this.name = 'DispatcherFailure';
  }
}

/** Refuses the call: the caller sees userMessage, the log gets logDetail (never a token). */
export function fail(userMessage: string, logDetail: string, code: ErrorCode = 'refused'): never {
  throw new DispatcherFailure(code, userMessage, logDetail);
}

/** Not-found has its own code but the same message for "missing" and "someone else's". */
export function notFound(logDetail: string): never {
  throw new DispatcherFailure('not_found', 'No such archive.', logDetail);
}

export function internal(logDetail: string): never {
  throw new DispatcherFailure('internal', 'The backup host could not complete the request.', logDetail);
}

// Tells a database outage (connection lost, refused, timed out, server restarting) apart from a fault in our own code.

/** SQLSTATE classes and codes that mean "the server went away or will not serve now", not "the query is wrong". */
const UNAVAILABLE_SQLSTATES = [/^08/, /^57P0[1-4]$/, /^53300$/, /^57014$/];
const UNAVAILABLE_MESSAGES = [
  /Connection terminated/i,
  /Query read timeout/i,
  /timeout exceeded when trying to connect/i,
  /Client has encountered a connection error/i,
  /Connection terminated due to connection timeout/i,
];
const UNAVAILABLE_SYSCALL_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH']);

/** True when the error (or one it wraps) says the database cannot be reached right now: worth a "try again", not a bug report. */
export function isDatabaseUnavailable(error: unknown): boolean {
  for (let e = error, depth = 0; e instanceof Error && depth < 5; e = (e as { cause?: unknown }).cause, depth += 1) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && (UNAVAILABLE_SYSCALL_CODES.has(code) || UNAVAILABLE_SQLSTATES.some((p) => p.test(code)))) return true;
    if (UNAVAILABLE_MESSAGES.some((p) => p.test(e.message))) return true;
  }
  return false;
}

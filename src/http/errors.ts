// The one place that turns a thrown error into an HTML page, without details of server faults.
import type { FastifyError, FastifyInstance } from 'fastify';
import { isDatabaseUnavailable } from '../db/unavailable.js';
import { RATE_LIMITED_CODE, RATE_LIMITED_MESSAGE } from './rate-limit.js';

/** Seconds a client is asked to wait when the database is away: about one restart or failover. */
export const DATABASE_RETRY_AFTER_SECONDS = 30;

/** Messages for client mistakes Fastify itself detects; anything else gets a plain status line. */
export const BAD_REQUEST_MESSAGE = 'The request could not be understood. Please go back and try again.';

const CLIENT_MESSAGES: Record<number, string> = {
  400: BAD_REQUEST_MESSAGE,
  403: 'You are not allowed to do that.',
  404: 'There is no page at this address.',
  405: 'That action is not available here.',
  413: 'What you sent is too large.',
  415: 'That kind of content is not accepted here.',
  429: 'Too many requests. Please wait a moment and try again.',
};

/** Messages for refusals that have their own error code (a missing or wrong CSRF token, a rate limit reached). */
const CODE_MESSAGES: Record<string, string> = {
  FST_CSRF_MISSING_SECRET: 'This form has expired or did not come from this site. Go back, reload the page and try again.',
  FST_CSRF_INVALID_TOKEN: 'This form has expired or did not come from this site. Go back, reload the page and try again.',
  [RATE_LIMITED_CODE]: RATE_LIMITED_MESSAGE,
};

export function registerErrorPages(app: FastifyInstance): void {
  app.setNotFoundHandler((request, reply) => {
    return reply.code(404).view('errors/error', {
      title: 'Page not found',
      status: 404,
      message: CLIENT_MESSAGES[404],
      requestId: request.id,
    });
  });

  app.setErrorHandler((error: FastifyError, request, reply) => {
    // A database restart or partition is an outage of a dependency, not a fault: 503 and when to come back.
    if (isDatabaseUnavailable(error)) {
      request.log.warn({ reason: error.message }, 'request failed: database unavailable');
      return reply.code(503).header('retry-after', String(DATABASE_RETRY_AFTER_SECONDS)).view('errors/error', {
        title: 'Please try again in a moment',
        status: 503,
        message: 'The service is briefly unavailable. Nothing you did caused it; please try again in a minute.',
        requestId: request.id,
      });
    }
    const status = error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 600 ? error.statusCode : 500;
    if (status >= 500) {
      request.log.error({ err: error }, 'request failed');
    } else {
      request.log.info({ status, code: error.code }, 'request refused');
    }
    const message =
      status >= 500
        ? 'Something went wrong on our side. Nothing you did caused it; please try again in a moment.'
        : (CODE_MESSAGES[error.code] ?? CLIENT_MESSAGES[status] ?? 'The request could not be completed.');
    return reply.code(status).view('errors/error', {
      title: status >= 500 ? 'Something went wrong' : 'That did not work',
      status,
      message,
      requestId: request.id,
    });
  });
}

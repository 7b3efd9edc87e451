// Per-user limits on the pages that make the backup host work (each call there is an SSH exec and a dispatcher run).
import type { RateLimitOptions, RateLimitPluginOptions } from '@fastify/rate-limit';
import type { FastifyRequest } from 'fastify';

/** The code of the error a limited request throws; the error page (src/http/errors.ts) gives it its own message. */
export const RATE_LIMITED_CODE = 'ARCHWAY_RATE_LIMITED';

export const RATE_LIMITED_MESSAGE = 'You have asked for this page many times in a short while. Please wait a minute and try again.';

/**
 * The plugin's settings for src/app.ts (registered with `global: false`: only routes with a
 * `config.rateLimit` are limited). Counts live in PostgreSQL (`rate-limit-store.ts`), so a user
 * gets the same limit however many portal instances share the work.
 */
export const rateLimitSettings: RateLimitPluginOptions = {
  // After the global CSRF and two-factor checks and the route's own guard (requireCustomer), so a
  // visitor sent to sign in, or a forged form, uses up nothing.
  hook: 'preHandler',
  // The signed-in user, wherever they come from; the address only for someone not signed in.
  keyGenerator: (request: FastifyRequest) => (request.user !== null ? `user:${request.user.id}` : `ip:${request.ip}`),
  // A browser has no use for the X-RateLimit-* headers; only a refusal says when to come back.
  addHeadersOnExceeding: { 'x-ratelimit-limit': false, 'x-ratelimit-remaining': false, 'x-ratelimit-reset': false },
  addHeaders: { 'x-ratelimit-limit': false, 'x-ratelimit-remaining': false, 'x-ratelimit-reset': false, 'retry-after': true },
  // Thrown to the error handler, which renders the ordinary error page (429, RATE_LIMITED_MESSAGE).
  errorResponseBuilder: (_request, context) =>
    Object.assign(new Error('rate limit reached'), { statusCode: context.statusCode, code: RATE_LIMITED_CODE }),
};

/** A route's limit: at most `max` requests a minute for each user. */
export function perUserPerMinute(max: number, extra: Pick<RateLimitOptions, 'allowList'> = {}): RateLimitOptions {
  return { max, timeWindow: 60_000, ...extra };
}

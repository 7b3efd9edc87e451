// Wires the request-level security of signing in: HTTPS, the session cookie and store, request.user, CSRF.
import { createHmac, randomBytes } from 'node:crypto';
import fastifyCookie from '@fastify/cookie';
import fastifyCsrf from '@fastify/csrf-protection';
import fastifySession from '@fastify/session';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { findUserById } from '../users/user.repository.js';
import { PostgresSessionStore } from '../users/session.store.js';
import { endThisSessionRow } from '../users/session.service.js';

/** Methods that never change state (no route may change anything on them), so they carry no CSRF token. */
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
/**
 * Probes (container health checks, the proxy) ask over plain HTTP from inside; they reveal nothing.
 * Prometheus scrapes each instance directly too; /metrics there needs its bearer token (docs/METRICS.md).
 */
const PLAIN_HTTP_ALLOWED = new Set(['/healthz', '/readyz', '/metrics']);

declare module 'fastify' {
  interface FastifyReply {
    /** Values @fastify/view merges into every view's `it` (set per request here). */
    locals: Record<string, unknown> | null;
  }
}

export interface CookieNames {
  session: string;
  csrf: string;
}

/**
 * `__Host-` makes browsers refuse the cookie unless it is Secure, has Path=/ and no Domain, so no
 * sibling subdomain can plant or overwrite it. Browsers also refuse a `__Host-` cookie that is not
 * Secure, and first-look mode serves plain HTTP on loopback, so without HTTPS the plain names are used.
 */
export function cookieNames(secure: boolean): CookieNames {
  return secure ? { session: '__Host-archway-session', csrf: '__Host-archway-csrf' } : { session: 'archway-session', csrf: 'archway-csrf' };
}

export async function registerAuth(app: FastifyInstance): Promise<void> {
  const { config } = app.ctx;
  const secure = config.auth.requireHttps;
  const names = cookieNames(secure);

  // Refuse plain HTTP before anything reads a cookie: a GET is sent to the https address (built
  // from the configured public URL, never from the Host header, so it cannot become an open
  // redirect); anything else is refused, since a redirect would lose the body that already went in clear.
  if (config.auth.requireHttps) {
    const httpsOrigin = config.publicUrl.startsWith('https://') ? config.publicUrl : null;
    app.addHook('onRequest', async (request, reply) => {
      if (request.protocol === 'https' || PLAIN_HTTP_ALLOWED.has(request.url.split('?', 1)[0] ?? '')) return;
      request.log.info({ protocol: request.protocol }, 'plain HTTP refused');
      if ((request.method === 'GET' || request.method === 'HEAD') && httpsOrigin !== null) {
        return reply.redirect(`${httpsOrigin}${request.url}`, 301);
      }
      return reply.code(403).view('errors/error', {
        title: 'HTTPS required',
        status: 403,
        message: 'This portal only answers over HTTPS. Use the https:// address.',
        requestId: request.id,
      });
    });
  }

  await app.register(fastifyCookie, { secret: config.secrets.sessionSecret });
  await app.register(fastifySession, {
    secret: config.secrets.sessionSecret,
    cookieName: names.session,
    store: new PostgresSessionStore(app.ctx.database.db, app.ctx.clock, {
      idleMinutes: config.auth.sessionIdleMinutes,
      absoluteHours: config.auth.sessionAbsoluteHours,
    }),
    // 256 random bits; the store keeps only their SHA-256.
    idGenerator: () => randomBytes(32).toString('base64url'),
    // A visitor who is not signed in gets no row (and no cookie): nothing to flood the table with.
    saveUninitialized: false,
    // Every answer to a signed-in request saves the row, which moves last_seen_at: the idle clock.
    rolling: true,
    // No Max-Age: the cookie ends with the browser; the server enforces idle and absolute expiry.
    cookie: { secure, httpOnly: true, sameSite: 'lax', path: '/' },
  });

  app.decorateRequest('user', null);
  app.addHook('onRequest', async (request) => {
    request.user = null;
    const userId = request.session?.userId;
    if (typeof userId !== 'string') return;
    const user = await findUserById(app.ctx.database.db, userId);
    // A suspended (or deleted) account loses its sessions at its next request, not only at the next sign-in.
    if (user === null || user.status !== 'active') {
      request.log.info({ userId }, 'session of an inactive or deleted account ended');
      // The row goes; the request keeps an empty session object, so later hooks can still start a new one.
      await endThisSessionRow(app.ctx.database.db, request.session.sessionId);
      request.session.userId = null;
      return;
    }
    const { passwordHash: _never, ...visible } = user;
    request.user = visible;
  });

  // The CSRF secret lives in its own signed cookie, so a visitor who is not signed in needs no
  // session row to get a working sign-in form; each token is also bound to the signed-in user (or
  // to "no user"), so a token picked up before signing in does not work after.
  await app.register(fastifyCsrf, {
    sessionPlugin: '@fastify/cookie',
    cookieKey: names.csrf,
    cookieOpts: { path: '/', sameSite: 'lax', httpOnly: true, secure, signed: true },
    getUserInfo: (request: FastifyRequest) => csrfUserInfo(request),
    csrfOpts: { hmacKey: createHmac('sha256', config.secrets.sessionSecret).update('archway csrf').digest() },
    // Only the form field: a token in a header or query string is not something our pages send.
    // A repeated field arrives as an array: that is no token either.
    getToken: (request: FastifyRequest) => {
      const token = (request.body as { _csrf?: unknown } | null | undefined)?._csrf;
      return typeof token === 'string' ? token : undefined;
    },
  });
  // One global check for every state-changing route, in preHandler because the form body is parsed
  // after onRequest. Routes cannot forget it, and none can opt out.
  app.addHook('preHandler', (request, reply, done) => {
    if (SAFE_METHODS.has(request.method)) return done();
    // Signing out a browser whose session already ended changes nothing worth forging, while its
    // form token (tied to the user who is gone) would otherwise turn "Sign out" into an error page.
    if (request.user === null && request.method === 'POST' && request.url.split('?', 1)[0] === '/sign-out') return done();
    // A customer's POST to the operator area gets the 404 of requireOperator, never a CSRF refusal that would reveal the area.
    if (request.user !== null && request.user.role !== 'operator' && /^\/operator(\/|\?|$)/.test(request.url)) return done();
    app.csrfProtection(request, reply, done);
  });

  // Every view gets it.user and it.csrfToken; the token (and its cookie) is made only when a page uses it.
  app.addHook('onRequest', async (request, reply) => {
    if (reply.locals === null || reply.locals === undefined) reply.locals = {};
    let token: string | undefined;
    Object.defineProperty(reply.locals, 'csrfToken', {
      enumerable: true,
      get: () => (token ??= csrfToken(request, reply)),
    });
    Object.defineProperty(reply.locals, 'user', { enumerable: true, get: () => request.user });
  });
}

function csrfUserInfo(request: FastifyRequest): string {
  return request.user?.id ?? 'visitor';
}

function csrfToken(request: FastifyRequest, reply: FastifyReply): string {
  return reply.generateCsrf({ userInfo: csrfUserInfo(request) });
}

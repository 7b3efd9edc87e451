// Wires remember-me into requests: signs a browser in from its cookie, and issues or ends the cookie at sign-in and sign-out.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { findUserById } from '../users/user.repository.js';
import {
  attachSession,
  createRememberLogin,
  endRememberLoginByCookie,
  rememberCookieName,
  rotationKey,
  useRememberCookie,
} from './remember-me.service.js';
import { startUserSession } from '../users/session.service.js';
import { sessionKey } from '../users/session.store.js';

declare module 'fastify' {
  interface Session {
    /** True when this session was started from a remember-me cookie, not by typing the password. */
    rememberedSignIn?: boolean;
    /** The remember-me series this browser holds, if any (to end both together). */
    rememberSeries?: string;
  }
  interface FastifyInstance {
    rememberMe: { cookieName: string; secure: boolean; rotationKey: Buffer };
  }
}

function userAgentOf(request: FastifyRequest): string | null {
  return (request.headers['user-agent'] ?? '').slice(0, 512) || null;
}

function cookieOptions(app: FastifyInstance) {
  return { path: '/', secure: app.rememberMe.secure, httpOnly: true, sameSite: 'lax' as const };
}

export function registerRememberMe(app: FastifyInstance): void {
  const secure = app.ctx.config.auth.requireHttps;
  app.decorate('rememberMe', {
    cookieName: rememberCookieName(secure),
    secure,
    rotationKey: rotationKey(app.ctx.config.secrets.sessionSecret),
  });

  // After the session hooks of registerAuth: only a browser with no live session uses its cookie.
  app.addHook('onRequest', async (request, reply) => {
    const cookie = request.cookies[app.rememberMe.cookieName];
    if (cookie === undefined || request.user !== null) return;
    // Static files and probes need no sign-in; rotating on them would only race the page itself.
    const path = request.url.split('?', 1)[0] ?? '';
    if (path.startsWith('/static/') || path === '/healthz' || path === '/readyz') return;

    const outcome = await useRememberCookie(app.ctx.database.db, {
      cookie,
      now: app.ctx.clock.now(),
      rotationKey: app.rememberMe.rotationKey,
      mail: app.ctx.mail,
      ip: request.ip,
      userAgent: userAgentOf(request),
    });
    if (outcome.kind === 'theft') {
      request.log.warn(
        { userId: outcome.userId, reason: outcome.reason },
        'remember-me cookie theft suspected: every remember-me login and session of the user ended, user emailed',
      );
      reply.clearCookie(app.rememberMe.cookieName, cookieOptions(app));
      return;
    }
    if (outcome.kind !== 'signed-in') {
      if (outcome.kind === 'expired') request.log.info({ userId: outcome.userId }, 'remember-me login expired');
      reply.clearCookie(app.rememberMe.cookieName, cookieOptions(app));
      return;
    }
    const user = await findUserById(app.ctx.database.db, outcome.userId);
    if (user === null || user.status !== 'active') {
      await endRememberLoginByCookie(app.ctx.database.db, outcome.cookie.value);
      reply.clearCookie(app.rememberMe.cookieName, cookieOptions(app));
      return;
    }
    await startUserSession(request, user);
    request.session.rememberedSignIn = true;
    request.session.rememberSeries = outcome.cookie.series;
    await attachSession(app.ctx.database.db, outcome.cookie.series, sessionKey(request.session.sessionId));
    reply.setCookie(app.rememberMe.cookieName, outcome.cookie.value, { ...cookieOptions(app), expires: outcome.cookie.expiresAt });
    const { passwordHash: _never, ...visible } = user;
    request.user = visible;
    request.log.info({ userId: user.id, concurrent: outcome.concurrent }, 'signed in from a remember-me cookie');
  });
}

/** Issues the remember-me cookie after a complete sign-in (password and, when on, the second step). */
export async function rememberThisDevice(request: FastifyRequest, reply: FastifyReply, userId: string): Promise<void> {
  const app = request.server;
  // A previous login on this browser (another account, an earlier sign-in) is replaced, not left behind.
  await endRememberLoginByCookie(app.ctx.database.db, request.cookies[app.rememberMe.cookieName]);
  const cookie = await createRememberLogin(app.ctx.database.db, {
    userId,
    now: app.ctx.clock.now(),
    sessionId: sessionKey(request.session.sessionId),
    ip: request.ip,
    userAgent: userAgentOf(request),
  });
  request.session.rememberSeries = cookie.series;
  reply.setCookie(app.rememberMe.cookieName, cookie.value, { ...cookieOptions(app), expires: cookie.expiresAt });
}

/** Sign-out: this browser's remember-me login ends with its session. */
export async function forgetThisDevice(request: FastifyRequest, reply: FastifyReply): Promise<void> {
  const app = request.server;
  const cookie = request.cookies[app.rememberMe.cookieName];
  if (cookie === undefined) return;
  await endRememberLoginByCookie(app.ctx.database.db, cookie);
  reply.clearCookie(app.rememberMe.cookieName, cookieOptions(app));
}

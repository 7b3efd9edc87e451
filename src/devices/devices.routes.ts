// The devices page: where the account is signed in, ending one browser, all others, or every one.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { cookieNames } from '../auth/auth.plugin.js';
import { requireUser } from '../users/guards.js';
import { endRememberLogins, endThisSession, endUserSessions } from '../users/session.service.js';
import { sessionKey } from '../users/session.store.js';
import { endDevice, listDevices } from './devices.js';

type Form = Record<string, unknown> | undefined;

const NOTICES: Record<string, string> = {
  ended: 'That browser was signed out.',
  'others-ended': 'Every other browser was signed out.',
  gone: 'That browser was already signed out.',
};

export function registerDeviceRoutes(app: FastifyInstance): void {
  const currentKey = (request: FastifyRequest) => (request.session?.sessionId ? sessionKey(request.session.sessionId) : null);

  app.get<{ Querystring: Record<string, string> }>('/account/devices', { preHandler: requireUser }, async (request, reply) => {
    const devices = await listDevices(app.ctx.database.db, request.user!.id, app.ctx.clock.now(), {
      idleMinutes: app.ctx.config.auth.sessionIdleMinutes,
      currentSessionKey: currentKey(request),
    });
    const notice =
      Object.keys(request.query)
        .map((k) => NOTICES[k])
        .find((n) => n !== undefined) ?? null;
    return reply
      .header('cache-control', 'no-store')
      .view('account/devices', { title: 'Where you are signed in', devices, notice, fmt: formatUtc });
  });

  app.post<{ Body: Form }>('/account/devices/end', { preHandler: requireUser }, async (request, reply) => {
    const ref = typeof request.body?.device === 'string' ? request.body.device.slice(0, 80) : '';
    // This browser signs out through the sign-out button, which also clears its cookies.
    if (ref === `s:${currentKey(request)}`) return reply.redirect('/sign-out', 303);
    const ended = await endDevice(app.ctx.database.db, request.user!.id, ref);
    if (ended) request.log.info({ userId: request.user!.id }, 'a browser was signed out from the devices page');
    return reply.redirect(ended ? '/account/devices?ended' : '/account/devices?gone', 303);
  });

  app.post('/account/devices/end-others', { preHandler: requireUser }, async (request, reply) => {
    const userId = request.user!.id;
    const sessions = await endUserSessions(
      app.ctx.database.db,
      userId,
      request.session?.sessionId ? { exceptSessionId: request.session.sessionId } : {},
    );
    const series = request.session?.rememberSeries;
    const logins = await endRememberLogins(app.ctx.database.db, userId, series !== undefined ? { exceptSeries: series } : {});
    request.log.info({ userId, sessions, logins }, 'every other browser signed out');
    return reply.redirect('/account/devices?others-ended', 303);
  });

  // "Sign out everywhere": this browser too, and every remember-me login.
  app.post('/account/devices/sign-out-everywhere', { preHandler: requireUser }, async (request, reply) => {
    const userId = request.user!.id;
    await endRememberLogins(app.ctx.database.db, userId);
    await endUserSessions(app.ctx.database.db, userId);
    await endThisSession(request);
    const secure = app.ctx.config.auth.requireHttps;
    const options = { path: '/', secure, httpOnly: true, sameSite: 'lax' as const };
    reply.clearCookie(cookieNames(secure).session, options);
    reply.clearCookie(app.rememberMe.cookieName, options);
    request.log.info({ userId }, 'signed out everywhere');
    return reply.redirect('/sign-in?signed-out', 303);
  });
}

function formatUtc(date: Date): string {
  return `${date.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

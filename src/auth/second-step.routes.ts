// The second sign-in step: the code (or a recovery code) after a correct password, then the signed-in session.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { pendingSignIn } from '../two-factor/second-step.js';
import { BLOCKED_MESSAGE, verifySecondFactor } from '../two-factor/two-factor.service.js';
import { startUserSession } from '../users/session.service.js';
import { findUserById } from '../users/user.repository.js';
import { rememberThisDevice } from './remember-me.hooks.js';

type Form = Record<string, unknown> | undefined;

const text = (value: unknown, max: number): string => (typeof value === 'string' ? value.slice(0, max) : '');

function startPage(role: string): string {
  return role === 'operator' ? '/operator' : '/account';
}

export function registerSecondStepRoutes(app: FastifyInstance): void {
  const ctx = () => app.twoFactor;

  const renderSecondStep = (reply: FastifyReply, status: number, error: string | null) =>
    reply.code(status).view('two-factor/sign-in', { title: 'Two-factor sign-in', error });

  app.get('/sign-in/two-factor', async (request, reply) => {
    if (request.user !== null) return reply.redirect(startPage(request.user.role), 303);
    if (pendingSignIn(request) === null) return reply.redirect('/sign-in', 303);
    return renderSecondStep(reply, 200, null);
  });

  app.post('/sign-in/two-factor', async (request: FastifyRequest<{ Body: Form }>, reply) => {
    const pending = pendingSignIn(request);
    // Expired (5 minutes) or never started: the password has to be entered again.
    if (pending === null) return reply.redirect('/sign-in', 303);
    const code = text(request.body?.code, 64).trim();
    if (code === '') return renderSecondStep(reply, 400, 'Enter the 6-digit code from your app, or a recovery code.');

    const result = await verifySecondFactor(ctx(), pending.userId, code, request.ip);
    app.ctx.metrics.recordSecondStep(result.ok ? 'success' : result.reason === 'not-enrolled' ? 'not_enrolled' : result.reason);
    if (!result.ok) {
      request.log.info({ userId: pending.userId, reason: result.reason }, 'second sign-in step failed');
      if (result.reason === 'blocked') return renderSecondStep(reply, 429, BLOCKED_MESSAGE);
      return renderSecondStep(
        reply,
        401,
        'That code did not work. Enter the code your app shows now (each code works once), or an unused recovery code.',
      );
    }
    const user = await findUserById(app.ctx.database.db, pending.userId);
    if (user === null || user.status !== 'active') return reply.redirect('/sign-in', 303);
    // A fresh id once more: the half-signed-in session is not the signed-in one.
    await startUserSession(request, user);
    if (pending.remember) await rememberThisDevice(request, reply, user.id);
    request.log.info({ userId: user.id, method: result.method }, 'signed in with the second step');
    return reply.redirect(pending.next ?? startPage(user.role), 303);
  });
}

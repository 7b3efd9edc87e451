// The two-factor pages: settings on the account, enrolment, recovery codes, the second sign-in step, and the operator's reset.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { findUserByEmail, findUserById } from '../accounts/user.repository.js';
import { requireOperator, requireUser } from '../auth/guards.js';
import { rememberThisDevice } from '../auth/remember-me.hooks.js';
import { startUserSession } from '../auth/session.service.js';
import { groupedSecret } from './totp.js';
import { pendingSignIn } from './second-step.js';
import {
  BLOCKED_MESSAGE,
  disableTwoFactor,
  enableTwoFactor,
  enrolmentSecret,
  regenerateRecoveryCodes,
  resetTwoFactorByOperator,
  TwoFactorAlreadyOn,
  twoFactorStatus,
  verifySecondFactor,
  type ThisBrowser,
} from './two-factor.service.js';

type Form = Record<string, unknown> | undefined;

const text = (value: unknown, max: number): string => (typeof value === 'string' ? value.slice(0, max) : '');
/** Long enough for any password the policy accepts (128 characters, up to 4 bytes each). */
const MAX_PASSWORD_INPUT = 4 * 128 + 1;

function startPage(role: string): string {
  return role === 'operator' ? '/operator' : '/account';
}

function browserOf(request: FastifyRequest): ThisBrowser {
  return {
    ip: request.ip,
    ...(request.session?.sessionId !== undefined ? { sessionId: request.session.sessionId } : {}),
    ...(request.session?.rememberSeries !== undefined ? { rememberSeries: request.session.rememberSeries } : {}),
  };
}

const NOTICES: Record<string, string> = {
  on: 'Two-factor sign-in is on.',
  off: 'Two-factor sign-in is off. Every other browser was signed out.',
};

export function registerTwoFactorRoutes(app: FastifyInstance): void {
  const ctx = () => app.twoFactor;

  // Settings ------------------------------------------------------------------------------------

  const renderSettings = async (
    request: FastifyRequest,
    reply: FastifyReply,
    status: number,
    values: { notice?: string | null; form?: 'disable' | 'codes' | null; errors?: { password?: string; code?: string } } = {},
  ) => {
    const user = request.user!;
    const state = await twoFactorStatus(app.database.db, user.id);
    return reply
      .code(status)
      .header('cache-control', 'no-store')
      .view('two-factor/settings', {
        title: 'Two-factor sign-in',
        status: state,
        notice: values.notice ?? null,
        form: values.form ?? null,
        errors: values.errors ?? {},
        fmt: formatUtc,
      });
  };

  app.get<{ Querystring: Record<string, string> }>('/account/two-factor', { preHandler: requireUser }, async (request, reply) => {
    const notice =
      Object.keys(request.query)
        .map((k) => NOTICES[k])
        .find((n) => n !== undefined) ?? null;
    return renderSettings(request, reply, 200, { notice });
  });

  // Enrolment -----------------------------------------------------------------------------------

  const renderEnrol = async (
    request: FastifyRequest,
    reply: FastifyReply,
    status: number,
    errors: { password?: string; code?: string } = {},
  ) => {
    const user = request.user!;
    try {
      const { secret, svg } = await enrolmentSecret(ctx(), user);
      return await reply
        .code(status)
        .header('cache-control', 'no-store')
        .view('two-factor/enrol', {
          title: 'Set up two-factor sign-in',
          qrSvg: svg,
          secretText: groupedSecret(secret),
          issuer: ctx().issuer,
          account: user.email,
          errors,
          required: user.role === 'operator' || ctx().requiredForCustomers,
        });
    } catch (error) {
      if (error instanceof TwoFactorAlreadyOn) return reply.redirect('/account/two-factor', 303);
      throw error;
    }
  };

  app.get('/account/two-factor/enrol', { preHandler: requireUser }, async (request, reply) => renderEnrol(request, reply, 200));

  app.post<{ Body: Form }>('/account/two-factor/enrol', { preHandler: requireUser }, async (request, reply) => {
    const password = text(request.body?.password, MAX_PASSWORD_INPUT);
    const code = text(request.body?.code, 64);
    let result;
    try {
      result = await enableTwoFactor(ctx(), request.user!.id, { password, code }, browserOf(request));
    } catch (error) {
      if (error instanceof TwoFactorAlreadyOn) return reply.redirect('/account/two-factor', 303);
      throw error;
    }
    if (!result.ok) return renderEnrol(request, reply, 422, result.errors);
    request.log.info({ userId: request.user!.id }, 'two-factor sign-in turned on');
    // The codes exist nowhere else in readable form, so they are shown in this answer, not after a
    // redirect (that would mean keeping them somewhere in between); no-store keeps them out of caches.
    return showRecoveryCodes(reply, result.recoveryCodes, 'Two-factor sign-in is on');
  });

  const showRecoveryCodes = (reply: FastifyReply, codes: string[], heading: string) =>
    reply.code(200).header('cache-control', 'no-store').view('two-factor/recovery-codes', { title: heading, codes });

  // Recovery codes and disabling ----------------------------------------------------------------

  app.post<{ Body: Form }>('/account/two-factor/recovery-codes', { preHandler: requireUser }, async (request, reply) => {
    const password = text(request.body?.password, MAX_PASSWORD_INPUT);
    const result = await regenerateRecoveryCodes(ctx(), request.user!.id, { password }, browserOf(request));
    if (!result.ok) return renderSettings(request, reply, 422, { form: 'codes', errors: result.errors });
    request.log.info({ userId: request.user!.id }, 'new recovery codes made');
    return showRecoveryCodes(reply, result.recoveryCodes, 'Your new recovery codes');
  });

  app.post<{ Body: Form }>('/account/two-factor/disable', { preHandler: requireUser }, async (request, reply) => {
    const password = text(request.body?.password, MAX_PASSWORD_INPUT);
    const code = text(request.body?.code, 64);
    const result = await disableTwoFactor(ctx(), request.user!.id, { password, code }, browserOf(request));
    if (!result.ok) return renderSettings(request, reply, 422, { form: 'disable', errors: result.errors });
    request.log.info({ userId: request.user!.id }, 'two-factor sign-in turned off');
    return reply.redirect('/account/two-factor?off', 303);
  });

  // The second sign-in step ---------------------------------------------------------------------

  const renderSecondStep = (reply: FastifyReply, status: number, error: string | null) =>
    reply.code(status).header('cache-control', 'no-store').view('two-factor/sign-in', { title: 'Two-factor sign-in', error });

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
    if (!result.ok) {
      request.log.info({ userId: pending.userId, reason: result.reason }, 'second sign-in step failed');
      if (result.reason === 'blocked') return renderSecondStep(reply, 429, BLOCKED_MESSAGE);
      return renderSecondStep(
        reply,
        401,
        'That code did not work. Enter the code your app shows now (each code works once), or an unused recovery code.',
      );
    }
    const user = await findUserById(app.database.db, pending.userId);
    if (user === null || user.status !== 'active') return reply.redirect('/sign-in', 303);
    // A fresh id once more: the half-signed-in session is not the signed-in one.
    await startUserSession(request, user);
    if (pending.remember) await rememberThisDevice(request, reply, user.id);
    request.log.info({ userId: user.id, method: result.method }, 'signed in with the second step');
    return reply.redirect(pending.next ?? startPage(user.role), 303);
  });

  // The operator's reset ------------------------------------------------------------------------

  const renderReset = (reply: FastifyReply, status: number, values: { email?: string; error?: string | null; notice?: string | null }) =>
    reply
      .code(status)
      .header('cache-control', 'no-store')
      .view('two-factor/operator-reset', {
        title: 'Reset two-factor sign-in',
        email: values.email ?? '',
        error: values.error ?? null,
        notice: values.notice ?? null,
      });

  app.get<{ Querystring: { done?: string } }>('/operator/two-factor', { preHandler: requireOperator }, async (request, reply) =>
    renderReset(reply, 200, {
      notice: request.query.done !== undefined ? 'Two-factor sign-in was reset. The customer was emailed and signed out everywhere.' : null,
    }),
  );

  app.post<{ Body: Form }>('/operator/two-factor', { preHandler: requireOperator }, async (request, reply) => {
    const email = text(request.body?.email, 320).trim();
    const confirmed = request.body?.confirm === 'yes';
    if (email === '') return renderReset(reply, 400, { error: 'Enter the email address of the account.' });
    if (!confirmed) return renderReset(reply, 400, { email, error: 'Tick the box to confirm you checked who is asking.' });
    const target = await findUserByEmail(app.database.db, email);
    if (target === null) return renderReset(reply, 404, { email, error: 'There is no account with that email address.' });
    if (target.id === request.user!.id)
      return renderReset(reply, 400, { email, error: 'You cannot reset your own two-factor sign-in; another operator must.' });
    const reset = await resetTwoFactorByOperator(ctx(), request.user!.id, target.id, request.ip);
    if (!reset) return renderReset(reply, 409, { email, error: 'That account does not have two-factor sign-in on.' });
    request.log.warn({ operatorId: request.user!.id, userId: target.id }, 'two-factor reset by an operator');
    return reply.redirect('/operator/two-factor?done', 303);
  });
}

/** Times on the pages: minutes, in UTC, saying so. */
export function formatUtc(date: Date): string {
  return `${date.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

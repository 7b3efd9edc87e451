// The two-factor pages: settings on the account, enrolment, recovery codes, and the operator's reset.
import { formatUtc } from '../format.js';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { findUserByEmail } from '../users/user.repository.js';
import { requireOperator, requireUser } from '../users/guards.js';
import { groupedSecret } from './totp.js';
import {
  disableTwoFactor,
  enableTwoFactor,
  enrolmentSecret,
  OperatorKeepsTwoFactor,
  regenerateRecoveryCodes,
  resetTwoFactorByOperator,
  TwoFactorAlreadyOn,
  twoFactorStatus,
  type ThisBrowser,
} from './two-factor.service.js';

type Form = Record<string, unknown> | undefined;

const text = (value: unknown, max: number): string => (typeof value === 'string' ? value.slice(0, max) : '');
/** Long enough for any password the policy accepts (128 characters, up to 4 bytes each). */
const MAX_PASSWORD_INPUT = 4 * 128 + 1;

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

const OPERATOR_KEEPS_IT =
  'Operators keep two-factor sign-in on. For a new phone, ask another operator to reset it and to send you a new set-up link.';
const CUSTOMER_RESET_DONE = 'Two-factor sign-in was reset. The customer was emailed and signed out everywhere.';
// An operator without two-factor reaches nothing until set up again through a link (accounts/operator-enrolment.ts).
const OPERATOR_RESET_DONE =
  'Two-factor sign-in was reset. The operator was emailed and signed out everywhere, and can do nothing until set up again: ' +
  'send them a new set-up link with "archway users invite --email ADDRESS".';

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
    const state = await twoFactorStatus(app.ctx.database.db, user.id);
    return reply
      .code(status)
      .header('cache-control', 'no-store')
      .view('two-factor/settings', {
        title: 'Two-factor sign-in',
        status: state,
        notice: values.notice ?? null,
        form: values.form ?? null,
        errors: values.errors ?? {},
        operator: user.role === 'operator',
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
    let result;
    try {
      result = await disableTwoFactor(ctx(), request.user!.id, { password, code }, browserOf(request));
    } catch (error) {
      if (error instanceof OperatorKeepsTwoFactor) return renderSettings(request, reply, 403, { notice: OPERATOR_KEEPS_IT });
      throw error;
    }
    if (!result.ok) return renderSettings(request, reply, 422, { form: 'disable', errors: result.errors });
    request.log.info({ userId: request.user!.id }, 'two-factor sign-in turned off');
    return reply.redirect('/account/two-factor?off', 303);
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
      notice: request.query.done === undefined ? null : request.query.done === 'operator' ? OPERATOR_RESET_DONE : CUSTOMER_RESET_DONE,
    }),
  );

  app.post<{ Body: Form }>('/operator/two-factor', { preHandler: requireOperator }, async (request, reply) => {
    const email = text(request.body?.email, 320).trim();
    const confirmed = request.body?.confirm === 'yes';
    if (email === '') return renderReset(reply, 400, { error: 'Enter the email address of the account.' });
    if (!confirmed) return renderReset(reply, 400, { email, error: 'Tick the box to confirm you checked who is asking.' });
    const target = await findUserByEmail(app.ctx.database.db, email);
    if (target === null) return renderReset(reply, 404, { email, error: 'There is no account with that email address.' });
    if (target.id === request.user!.id)
      return renderReset(reply, 400, { email, error: 'You cannot reset your own two-factor sign-in; another operator must.' });
    const reset = await resetTwoFactorByOperator(ctx(), request.user!.id, target.id, request.ip);
    if (!reset) return renderReset(reply, 409, { email, error: 'That account does not have two-factor sign-in on.' });
    request.log.warn({ operatorId: request.user!.id, userId: target.id }, 'two-factor reset by an operator');
    return reply.redirect(target.role === 'operator' ? '/operator/two-factor?done=operator' : '/operator/two-factor?done', 303);
  });
}

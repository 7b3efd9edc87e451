// The account pages: the account itself, forgot password, set a password from a link, what we store, terms.
import { formatUtc } from '../format.js';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { requireUser } from '../users/guards.js';
import { MAX_PASSWORD_LENGTH } from '../users/password-policy.js';
import { InvalidAccountField, normalizeEmail } from './account-fields.js';
import { requestPasswordReset, setPasswordWithToken, userForLink } from './account.service.js';
import { looksLikeToken, TOKEN_LIFETIME_MS } from './account-token.js';
import { FINISHED_MAIL_KEPT_DAYS } from '../mail/mail-policy.js';
import { loadAccountOverview } from './account-overview.js';
import { enrolmentSecret, twoFactorStatus } from '../two-factor/two-factor.service.js';
import { groupedSecret } from '../two-factor/totp.js';
import { operatorNeedsEnrolment, setUpOperatorWithToken } from './operator-enrolment.js';
import type { User } from '../users/user.repository.js';

interface Form {
  [field: string]: unknown;
}

const text = (value: unknown, max: number): string => (typeof value === 'string' ? value.slice(0, max) : '');

/**
 * The link's token moves from the address bar into a cookie at once, so the page the browser keeps
 * in its history, shows and bookmarks is plain /set-password. `__Host-` when served over HTTPS keeps
 * a sibling subdomain from planting a token of its own.
 */
function linkCookieName(secure: boolean): string {
  return secure ? '__Host-archway-link' : 'archway-link';
}

export function registerAccountRoutes(app: FastifyInstance): void {
  const secure = app.ctx.config.auth.requireHttps;
  const linkCookie = linkCookieName(secure);
  const cookieOptions = { path: '/', secure, httpOnly: true, sameSite: 'lax' as const };

  // A reset email queued after the response must not be cut off by a shutdown.
  app.addHook('preClose', async () => app.ctx.background.settle());

  app.get('/account', { preHandler: requireUser }, async (request, reply) => {
    const overview = await loadAccountOverview(
      app.ctx.database.db,
      request.user?.id ?? '',
      app.ctx.clock.now(),
      app.ctx.config.auth.sessionIdleMinutes,
    );
    if (overview === null) return reply.redirect('/sign-in', 303);
    return reply.header('cache-control', 'no-store').view('account/account', {
      title: 'Your account',
      ...overview,
      twoFactor: await twoFactorStatus(app.ctx.database.db, overview.account.id),
      operatorAddress: contactAddress(app.ctx.config.mail.from),
      ipRetentionDays: app.ctx.config.auth.ipRetentionDays,
      fmt: formatUtc,
    });
  });

  // Forgot password ---------------------------------------------------------------------------

  const renderForgot = (reply: FastifyReply, status: number, values: { email?: string; error?: string | null }) =>
    reply
      .code(status)
      .header('cache-control', 'no-store')
      .view('account/forgot-password', { title: 'Forgot your password?', email: values.email ?? '', error: values.error ?? null });

  app.get('/forgot-password', async (_request, reply) => renderForgot(reply, 200, {}));

  app.post('/forgot-password', async (request: FastifyRequest<{ Body: Form | undefined }>, reply) => {
    const typed = text(request.body?.email, 320).trim();
    if (typed === '') return renderForgot(reply, 400, { error: 'Enter the email address of your account.' });
    let email: string;
    try {
      email = normalizeEmail(typed);
    } catch (error) {
      // Only the shape of the address is judged here, which says nothing about who has an account.
      if (error instanceof InvalidAccountField)
        return renderForgot(reply, 400, { email: typed, error: 'Enter an email address like someone@example.net.' });
      throw error;
    }
    // The answer goes out before the address is even looked up: the same words and the same time
    // for a known and an unknown address. The link, if any, is queued after.
    const now = app.ctx.clock.now();
    app.ctx.background.run('password reset', async () => {
      const outcome = await requestPasswordReset(app.ctx.database.db, email, {
        publicUrl: app.ctx.config.publicUrl,
        mail: app.ctx.mail,
        now,
        ip: request.ip,
        maxPerIpPerHour: app.ctx.config.auth.resetRequestsPerIpPerHour,
      });
      request.log.info({ outcome }, 'password reset requested');
    });
    return reply.redirect('/forgot-password/sent', 303);
  });

  app.get('/forgot-password/sent', async (_request, reply) =>
    reply.view('account/forgot-password-sent', {
      title: 'Check your email',
      validHours: Math.round(TOKEN_LIFETIME_MS.password_reset / 3_600_000),
    }),
  );

  // Set a password from a link ------------------------------------------------------------------

  const renderLinkUnusable = (reply: FastifyReply) =>
    reply.code(400).header('cache-control', 'no-store').view('account/link-unusable', { title: 'This link does not work any more' });

  const renderSetPassword = (
    reply: FastifyReply,
    status: number,
    values: { email: string; purpose: string; passwordErrors?: string[]; confirmError?: string | null },
  ) =>
    reply
      .code(status)
      .header('cache-control', 'no-store')
      .view('account/set-password', {
        title: values.purpose === 'invitation' ? 'Choose your password' : 'Set a new password',
        email: values.email,
        purpose: values.purpose,
        passwordErrors: values.passwordErrors ?? [],
        confirmError: values.confirmError ?? null,
        maxLength: MAX_PASSWORD_LENGTH,
      });

  // An operator without two-factor sets the password and turns two-factor on in one form: the
  // password alone must never open the operator's account.
  const renderOperatorSetUp = async (
    reply: FastifyReply,
    status: number,
    user: User,
    errors: { password?: string[]; confirm?: string; code?: string } = {},
  ) => {
    const { secret, svg } = await enrolmentSecret(app.twoFactor, user);
    return reply.code(status).view('account/operator-setup', {
      title: 'Set up your operator account',
      email: user.email,
      qrSvg: svg,
      secretText: groupedSecret(secret),
      issuer: app.twoFactor.issuer,
      passwordErrors: errors.password ?? [],
      confirmError: errors.confirm ?? null,
      codeError: errors.code ?? null,
      maxLength: MAX_PASSWORD_LENGTH,
    });
  };

  app.get('/set-password', async (request: FastifyRequest<{ Querystring: { token?: unknown } }>, reply) => {
    if (request.query.token !== undefined) {
      const link = looksLikeToken(request.query.token)
        ? await userForLink(app.ctx.database.db, request.query.token, app.ctx.clock.now())
        : null;
      if (link === null) return renderLinkUnusable(reply.clearCookie(linkCookie, cookieOptions));
      // The cookie lives no longer than the link: a reset link opened and left on a shared computer
      // must not stay usable there for the invitation's seven days.
      const secondsLeft = Math.ceil((link.expiresAt.getTime() - app.ctx.clock.now().getTime()) / 1000);
      reply.setCookie(linkCookie, request.query.token as string, { ...cookieOptions, maxAge: secondsLeft });
      return reply.redirect('/set-password', 303);
    }
    const found = await userForLink(app.ctx.database.db, request.cookies[linkCookie], app.ctx.clock.now());
    if (found === null) return renderLinkUnusable(reply);
    if (await operatorNeedsEnrolment(app.ctx.database.db, found.user)) return renderOperatorSetUp(reply, 200, found.user);
    return renderSetPassword(reply, 200, { email: found.user.email, purpose: found.purpose });
  });

  app.post('/set-password', async (request: FastifyRequest<{ Body: Form | undefined }>, reply) => {
    const token = request.cookies[linkCookie];
    const password = text(request.body?.password, MAX_PASSWORD_LENGTH * 4 + 1);
    const confirm = text(request.body?.password_confirm, MAX_PASSWORD_LENGTH * 4 + 1);
    const now = app.ctx.clock.now();
    const found = await userForLink(app.ctx.database.db, token, now);
    if (found === null) return renderLinkUnusable(reply);
    if (await operatorNeedsEnrolment(app.ctx.database.db, found.user)) {
      if (password.normalize('NFKC') !== confirm.normalize('NFKC')) {
        return renderOperatorSetUp(reply, 400, found.user, { confirm: 'The two passwords are not the same. Type the new password twice.' });
      }
      const code = text(request.body?.code, 64);
      const result = await setUpOperatorWithToken(app.twoFactor, { token, password, code, ip: request.ip });
      if (result.outcome === 'invalid-link') return renderLinkUnusable(reply);
      if (result.outcome === 'rejected') return renderOperatorSetUp(reply, 422, result.user, result.errors);
      request.log.info({ userId: result.user.id }, 'operator account set up from a link, two-factor on');
      reply.clearCookie(linkCookie, cookieOptions);
      // Shown in this answer only: the codes exist nowhere else in readable form.
      return reply.view('two-factor/recovery-codes', {
        title: 'Your operator account is ready',
        codes: result.recoveryCodes,
        continueUrl: '/sign-in',
        continueText: 'I have saved them: sign in',
      });
    }
    const shown = { email: found.user.email, purpose: found.purpose };
    if (password === '') return renderSetPassword(reply, 400, { ...shown, passwordErrors: ['Enter a new password.'] });
    if (password.normalize('NFKC') !== confirm.normalize('NFKC')) {
      return renderSetPassword(reply, 400, { ...shown, confirmError: 'The two passwords are not the same. Type the new password twice.' });
    }
    const result = await setPasswordWithToken(app.ctx.database.db, app.ctx.passwords, {
      token,
      password,
      now,
      ip: request.ip,
      mail: app.ctx.mail,
    });
    if (result.outcome === 'invalid-link') return renderLinkUnusable(reply);
    if (result.outcome === 'weak-password') return renderSetPassword(reply, 422, { ...shown, passwordErrors: result.problems });
    request.log.info({ userId: result.user.id, endedSessions: result.endedSessions }, 'password set from a link');
    reply.clearCookie(linkCookie, cookieOptions);
    return reply.redirect('/set-password/done', 303);
  });

  // Deliberately not signed in: whoever holds a link still has to know the password to get a session.
  app.get('/set-password/done', async (_request, reply) => reply.view('account/set-password-done', { title: 'Your password is set' }));

  // What we store, terms --------------------------------------------------------------------------

  app.get('/what-we-store', async (_request, reply) =>
    reply.view('account/what-we-store', {
      title: 'What we store about you',
      ipRetentionDays: app.ctx.config.auth.ipRetentionDays,
      idleMinutes: app.ctx.config.auth.sessionIdleMinutes,
      absoluteHours: app.ctx.config.auth.sessionAbsoluteHours,
      resetHours: Math.round(TOKEN_LIFETIME_MS.password_reset / 3_600_000),
      invitationDays: Math.round(TOKEN_LIFETIME_MS.invitation / 86_400_000),
      mailRecordDays: FINISHED_MAIL_KEPT_DAYS,
      operatorAddress: contactAddress(app.ctx.config.mail.from),
    }),
  );

  app.get('/terms', async (_request, reply) =>
    reply.view('account/terms', {
      title: 'Terms of Service',
      ipRetentionDays: app.ctx.config.auth.ipRetentionDays,
      operatorAddress: contactAddress(app.ctx.config.mail.from),
    }),
  );
}

/** The bare address out of "Archway <archway@example.net>", for "write to ..." sentences. */
export function contactAddress(from: string): string {
  return /<([^<>]+)>\s*$/.exec(from)?.[1] ?? from;
}

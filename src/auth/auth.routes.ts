// The sign-in and sign-out pages.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { safeReturnPath } from '../users/guards.js';
import { MAX_PASSWORD_LENGTH } from '../users/password-policy.js';
import { endThisSession, startUserSession } from '../users/session.service.js';
import { SIGN_IN_FAILED_MESSAGE, signIn } from './sign-in.service.js';
import { cookieNames } from './auth.plugin.js';
import { forgetThisDevice, rememberThisDevice } from './remember-me.hooks.js';
import { beginSecondStepIfNeeded } from '../two-factor/second-step.js';

interface SignInForm {
  email?: unknown;
  password?: unknown;
  next?: unknown;
  remember?: unknown;
}

/** Addresses longer than this are not addresses (RFC 5321 allows 254). */
const MAX_EMAIL = 320;

function startPage(role: string): string {
  return role === 'operator' ? '/operator' : '/account';
}

export function registerAuthRoutes(app: FastifyInstance): void {
  const renderSignIn = (
    reply: FastifyReply,
    status: number,
    values: {
      email?: string;
      next?: string | null;
      error?: string | null;
      notice?: string | null;
      fieldErrors?: Record<string, string>;
      remember?: boolean;
    },
  ) =>
    reply.code(status).view('auth/sign-in', {
      title: 'Sign in',
      email: values.email ?? '',
      next: values.next ?? null,
      error: values.error ?? null,
      notice: values.notice ?? null,
      fieldErrors: values.fieldErrors ?? {},
      remember: values.remember ?? false,
    });

  app.get('/sign-in', async (request: FastifyRequest<{ Querystring: { next?: string; 'signed-out'?: string } }>, reply) => {
    if (request.user !== null) return reply.redirect(startPage(request.user.role), 303);
    return renderSignIn(reply, 200, {
      next: safeReturnPath(request.query.next),
      notice: request.query['signed-out'] !== undefined ? 'You have signed out.' : null,
    });
  });

  app.post('/sign-in', async (request: FastifyRequest<{ Body: SignInForm | undefined }>, reply) => {
    const body = request.body ?? {};
    const email = typeof body.email === 'string' ? body.email.trim().slice(0, MAX_EMAIL) : '';
    const password = typeof body.password === 'string' ? body.password : '';
    const next = safeReturnPath(body.next);
    const remember = body.remember === 'on';

    const fieldErrors: Record<string, string> = {};
    if (email === '') fieldErrors.email = 'Enter your email address.';
    if (password === '') fieldErrors.password = 'Enter your password.';
    // No password longer than the policy allows can exist, so it is refused before any hashing work.
    else if ([...password.normalize('NFKC')].length > MAX_PASSWORD_LENGTH)
      fieldErrors.password = 'That password is longer than any we accept.';
    if (Object.keys(fieldErrors).length > 0) return renderSignIn(reply, 400, { email, next, fieldErrors, remember });

    const result = await signIn(app.ctx, { email, password, ip: request.ip });
    if (!result.ok) {
      request.log.info({ reason: result.reason }, 'sign-in failed');
      return renderSignIn(reply, 401, { email, next, error: SIGN_IN_FAILED_MESSAGE, remember });
    }
    // With two-factor on, the password only opens the second step (a half-signed-in session, no user yet).
    if (await beginSecondStepIfNeeded(request, result.user, { remember, next })) return reply.redirect('/sign-in/two-factor', 303);
    await startUserSession(request, result.user);
    // "Remember me" is issued only here or after the second step: never for a half sign-in.
    if (remember) await rememberThisDevice(request, reply, result.user.id);
    request.log.info({ userId: result.user.id }, 'signed in');
    return reply.redirect(next ?? startPage(result.user.role), 303);
  });

  // GET only shows the button: signing out changes state, so it takes a POST with the CSRF token.
  app.get('/sign-out', async (request, reply) => {
    if (request.user === null) return reply.redirect('/sign-in', 303);
    return reply.view('auth/sign-out', { title: 'Sign out' });
  });

  app.post('/sign-out', async (request, reply) => {
    const userId = request.user?.id;
    // This browser's remember-me login ends too, or the cookie would sign it straight back in.
    await forgetThisDevice(request, reply);
    await endThisSession(request);
    // Browsers accept a __Host- cookie (even an expired one) only with the same Secure and Path.
    const secure = app.ctx.config.auth.requireHttps;
    reply.clearCookie(cookieNames(secure).session, { path: '/', secure, httpOnly: true, sameSite: 'lax' });
    if (userId !== undefined) request.log.info({ userId }, 'signed out');
    return reply.redirect('/sign-in?signed-out', 303);
  });
}

// Sets up two-factor sign-in on the app: its keys and settings, and the "operators must enrol" rule.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { createKeyRing } from './key-ring.js';
import { recoveryCodeKey } from './recovery-codes.js';
import { isTwoFactorOn, type TwoFactorContext } from './two-factor.service.js';

declare module 'fastify' {
  interface FastifyInstance {
    twoFactor: TwoFactorContext & { requiredForCustomers: boolean };
  }
}

/** Pages anyone signed in may open: signing out, and what needs no account. */
const ALWAYS_OPEN = [/^\/sign-out$/, /^\/static\//, /^\/(healthz|readyz|terms|what-we-store)$/];
/** A customer who must use two-factor but has not enrolled may open enrolment too. */
const ENROLMENT = /^\/account\/two-factor\/enrol$/;

export function mustUseTwoFactor(app: FastifyInstance, user: { role: string }): boolean {
  return user.role === 'operator' || app.twoFactor.requiredForCustomers;
}

export function registerTwoFactor(app: FastifyInstance): void {
  const host = new URL(app.ctx.config.publicUrl).hostname;
  app.decorate('twoFactor', {
    db: app.ctx.database.db,
    log: app.log,
    regulator: app.ctx.regulator,
    clock: app.ctx.clock,
    keys: createKeyRing(app.ctx.config.secrets.encryptionKey, app.ctx.config.oldEncryptionKeys),
    recoveryKey: recoveryCodeKey(app.ctx.config.secrets.passwordPepper),
    issuer: `Archway (${host})`,
    passwords: app.ctx.passwords,
    mail: app.ctx.mail,
    requiredForCustomers: app.ctx.config.auth.twoFactorForCustomers,
  });

  // A customer who must use two-factor and has not enrolled reaches nothing but enrolment. An
  // operator without it reaches nothing at all: an operator turns two-factor on only through a
  // one-time link (archway users invite) together with the password, so a stolen operator password
  // never opens anything, not even enrolment. A preHandler, after the global CSRF check, so a
  // forged form is refused as such whoever is signed in.
  app.addHook('preHandler', async (request: FastifyRequest, reply) => {
    const user = request.user;
    if (user === null || !mustUseTwoFactor(app, user)) return;
    const path = request.url.split('?', 1)[0] ?? '';
    if (ALWAYS_OPEN.some((pattern) => pattern.test(path))) return;
    if (await isTwoFactorOn(app.ctx.database.db, user.id)) return;
    if (user.role === 'operator') {
      return reply.code(403).view('errors/error', {
        title: 'Your operator account is not set up',
        status: 403,
        message:
          'An operator account turns two-factor sign-in on through a one-time invitation link, not after signing in. ' +
          'Ask another operator for a new link (archway users invite), then sign out.',
        requestId: request.id,
      });
    }
    if (ENROLMENT.test(path)) return;
    if (request.method === 'GET' || request.method === 'HEAD') return reply.redirect('/account/two-factor/enrol', 303);
    return reply.code(403).view('errors/error', {
      title: 'Set up two-factor sign-in first',
      status: 403,
      message: 'Your account must use two-factor sign-in. Set it up first, then try again.',
      requestId: request.id,
    });
  });
}

// The half-signed-in state between the password and the second step: server-side, 5 minutes, no account access.
import type { FastifyRequest } from 'fastify';
import type { User } from '../users/user.repository.js';
import { isTwoFactorOn } from './two-factor.service.js';

export const SECOND_STEP_MINUTES = 5;

export interface PendingSignIn {
  userId: string;
  /** Epoch milliseconds (app clock) after which the password must be entered again. */
  until: number;
  remember: boolean;
  next: string | null;
}

declare module 'fastify' {
  interface Session {
    /**
     * Set after a correct password when two-factor is on. userId stays unset meanwhile, so
     * request.user is null and every guarded page still sends the browser to sign in.
     */
    twoFactorPending?: PendingSignIn;
  }
}

/**
 * Called by the sign-in route after a correct password: when the account has two-factor on, the
 * browser gets a new session holding only the pending sign-in, and the caller sends it to
 * /sign-in/two-factor. Returns false (nothing changed) when there is no second step.
 */
export async function beginSecondStepIfNeeded(
  request: FastifyRequest,
  user: Pick<User, 'id'>,
  options: { remember: boolean; next: string | null },
): Promise<boolean> {
  const app = request.server;
  if (!(await isTwoFactorOn(app.ctx.database.db, user.id))) return false;
  request.session.twoFactorPending = {
    userId: user.id,
    until: app.ctx.clock.now().getTime() + SECOND_STEP_MINUTES * 60_000,
    remember: options.remember,
    next: options.next,
  };
  // A new id here too: whatever id the browser had before the password is worth nothing now.
  await request.session.regenerate(['twoFactorPending']);
  return true;
}

/** The pending sign-in of this browser if it has not expired; an expired one is removed. */
export function pendingSignIn(request: FastifyRequest): PendingSignIn | null {
  const pending = request.session?.twoFactorPending;
  if (pending === undefined || pending === null || typeof pending.userId !== 'string') return null;
  if (request.server.ctx.clock.now().getTime() >= pending.until) {
    request.session.twoFactorPending = undefined;
    return null;
  }
  return pending;
}

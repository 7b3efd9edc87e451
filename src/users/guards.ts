// Who is asking: request.user from the session, and the preHandlers that let only users or operators through.
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { User } from './user.repository.js';

/** The signed-in user as routes and views see it: never the password hash. */
export type SignedInUser = Omit<User, 'passwordHash'>;

declare module 'fastify' {
  interface FastifyRequest {
    /** The signed-in, active user, or null. Set for every request before any route runs. */
    user: SignedInUser | null;
  }
}

/** Where to come back to after signing in: only a path on this site, never another host. */
export function safeReturnPath(value: unknown): string | null {
  if (typeof value !== 'string' || !value.startsWith('/') || value.startsWith('//') || value.includes('\\')) return null;
  if (value.length > 512 || /[\u0000-\u001f]/.test(value)) return null;
  return value;
}

/** Anyone not signed in is sent to the sign-in page (and brought back after, for a GET). */
export async function requireUser(request: FastifyRequest, reply: FastifyReply): Promise<void> {
  if (request.user !== null) return;
  const back = request.method === 'GET' ? safeReturnPath(request.url) : null;
  await reply.redirect(back === null ? '/sign-in' : `/sign-in?next=${encodeURIComponent(back)}`, 303);
}

/**
 * Only operators; someone not signed in goes to the sign-in page. A signed-in customer gets the
 * same 404 page as any unknown address, so the operator area does not reveal that it exists.
 */
export async function requireOperator(request: FastifyRequest, reply: FastifyReply): Promise<void> {
  if (request.user === null) return requireUser(request, reply);
  if (request.user.role !== 'operator') {
    request.log.info({ userId: request.user.id }, 'operator page asked for by a customer: answered 404');
    reply.callNotFound();
    return reply;
  }
}

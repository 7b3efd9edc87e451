// No answer of the portal is kept by a browser or proxy cache, except the public files under /static/.
import type { FastifyInstance } from 'fastify';

/**
 * Pages show a user's data or carry a form's CSRF token: a cached copy could be shown by the back
 * button to the next person at a shared computer after sign-out, or served by a proxy to someone else.
 * A route that sets its own Cache-Control keeps it.
 */
export function registerCachePolicy(app: FastifyInstance): void {
  app.addHook('onSend', async (request, reply) => {
    if (!reply.hasHeader('cache-control') && !request.url.startsWith('/static/')) reply.header('cache-control', 'no-store');
  });
}

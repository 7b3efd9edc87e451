// The operator area: recent sign-in attempts, active blocks with an unblock button, the request log, and (first-look) the outbox.
import type { FastifyInstance } from 'fastify';
import { requireOperator } from '../users/guards.js';
import { liftBlock, listActiveBlocks, listRecentAttempts } from '../users/regulation.js';

export function registerOperatorRoutes(app: FastifyInstance): void {
  app.get<{ Querystring: { unblocked?: string; 'no-block'?: string } }>(
    '/operator',
    { preHandler: requireOperator },
    async (request, reply) => {
      const [attempts, blocks] = await Promise.all([listRecentAttempts(app.ctx.database.db, 100), listActiveBlocks(app.ctx.regulator)]);
      return reply.view('operator/index', {
        title: 'Operator',
        attempts,
        blocks,
        now: app.ctx.clock.now(),
        notice:
          request.query.unblocked !== undefined
            ? 'The block was lifted.'
            : request.query['no-block'] !== undefined
              ? 'There is no active block with that id any more; it may have ended or been lifted already.'
              : null,
        outbox: app.ctx.config.mail.smtpUrl === null,
      });
    },
  );

  app.post<{ Params: { id: string } }>('/operator/blocks/:id/unblock', { preHandler: requireOperator }, async (request, reply) => {
    const operator = request.user!;
    const lifted = await liftBlock(app.ctx.regulator, request.params.id, { id: operator.id, ip: request.ip });
    if (lifted !== null) {
      request.log.info({ blockId: lifted.id, scope: lifted.scope }, 'block lifted by operator');
    }
    // A block that already ended, was lifted, or never existed: say so rather than claim a lift.
    return reply.redirect(lifted ? '/operator?unblocked' : '/operator?no-block', 303);
  });
}

// Probes for load balancers: /healthz says the process answers, /readyz that it can reach its database.
import type { FastifyInstance } from 'fastify';
import type { DatabaseHandle } from '../db/connect.js';

export function registerHealthRoutes(app: FastifyInstance, database: DatabaseHandle): void {
  app.get('/healthz', async (_request, reply) => {
    return reply.send({ status: 'ok' });
  });

  app.get('/readyz', async (_request, reply) => {
    const ready = await database.isReachable();
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'unavailable', database: ready ? 'reachable' : 'unreachable' });
  });
}

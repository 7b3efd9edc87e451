// Records every request by its route pattern, and serves /metrics on the main listener behind the bearer token.
import type { FastifyInstance } from 'fastify';
import { answerScrape } from './metrics-answer.js';
import { UNMATCHED_ROUTE } from './metrics.js';

export function registerMetricsRoutes(app: FastifyInstance): void {
  const { metrics, config } = app.ctx;
  app.addHook('onResponse', async (request, reply) => {
    // The pattern (/archives/:id), never the URL: ids and tokens must not become labels (or series without end).
    metrics.recordRequest(request.method, request.routeOptions.url ?? UNMATCHED_ROUTE, reply.statusCode, reply.elapsedTime / 1000);
  });
  // With its own listener, /metrics is there only; without a token, nowhere on this one (a 404 like any unknown page).
  const token = config.metrics.token;
  if (config.metrics.listen !== null || token === null) return;
  app.get('/metrics', async (request, reply) => answerScrape(metrics, token, request, reply));
}

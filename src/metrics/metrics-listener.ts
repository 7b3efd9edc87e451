// /metrics on its own listen address (ARCHWAY_METRICS_LISTEN), started and stopped with the portal's app.
import Fastify, { type FastifyInstance } from 'fastify';
import { answerScrape } from './metrics-answer.js';

/** Opens the metrics listener when the app is ready (a port in use fails the start) and closes it with the app. */
export function registerMetricsListener(app: FastifyInstance): void {
  const { config, metrics, log } = app.ctx;
  const listen = config.metrics.listen;
  if (listen === null) return;
  let server: FastifyInstance | null = null;
  app.addHook('onReady', async () => {
    // A scrape every few seconds is not worth two log lines each; refusals are still logged.
    server = Fastify({ loggerInstance: log.child({ component: 'metrics' }), disableRequestLogging: true });
    const token = config.metrics.token;
    server.get('/metrics', async (request, reply) => answerScrape(metrics, token, request, reply));
    const address = await server.listen({ host: listen.host, port: listen.port });
    log.info({ address }, `metrics listening on ${address}/metrics`);
  });
  app.addHook('onClose', async () => {
    await server?.close();
  });
}

// buildApp(): the whole web application, the same in production and in tests; main.ts only wires the process.
import { randomUUID } from 'node:crypto';
import fastifyFormbody from '@fastify/formbody';
import fastifyHelmet from '@fastify/helmet';
import fastifyStatic from '@fastify/static';
import fastifyView from '@fastify/view';
import { Eta } from 'eta';
import Fastify, { type FastifyInstance } from 'fastify';
import type { DestinationStream } from 'pino';
import type { Config, Secrets } from './config.js';
import type { DatabaseHandle } from './db/connect.js';
import { registerErrorPages } from './http/errors.js';
import { registerHealthRoutes } from './http/health.routes.js';
import { loggerOptions } from './log.js';
import { PUBLIC_DIR, VIEWS_DIR } from './paths.js';

export interface AppDependencies {
  config: Config & { secrets: Secrets };
  database: DatabaseHandle;
  /** Where log lines go; tests pass a stream to read them back. Defaults to stdout. */
  logStream?: DestinationStream;
}

declare module 'fastify' {
  interface FastifyInstance {
    config: Config & { secrets: Secrets };
    database: DatabaseHandle;
  }
}

export async function buildApp({ config, database, logStream }: AppDependencies): Promise<FastifyInstance> {
  const app = Fastify({
    logger: loggerOptions(config.logLevel, logStream),
    genReqId: () => randomUUID(),
    // Forms are small; a larger body is refused with 413 before it is parsed.
    bodyLimit: 64 * 1024,
  });
  app.decorate('config', config);
  app.decorate('database', database);
  app.addHook('onClose', async () => database.close());

  // A response finished while stopping must not leave its keep-alive connection open, or close()
  // would wait for the client (or a proxy's idle pool) to hang up.
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onSend', async (_request, reply) => {
    if (closing) reply.header('connection', 'close');
  });

  await app.register(fastifyHelmet, {
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'self'"],
        scriptSrc: ["'self'"],
        styleSrc: ["'self'"],
        imgSrc: ["'self'", 'data:'],
        formAction: ["'self'"],
        frameAncestors: ["'none'"],
        baseUri: ["'none'"],
        objectSrc: ["'none'"],
      },
    },
    // The download page carries a token in its first URL; no Referer may ever repeat it.
    referrerPolicy: { policy: 'no-referrer' },
    xFrameOptions: { action: 'deny' },
    // HSTS only means something over HTTPS, which first-look mode on loopback does not use.
    hsts: config.mode === 'server' ? { maxAge: 31_536_000, includeSubDomains: true } : false,
  });
  await app.register(fastifyFormbody);
  await app.register(fastifyStatic, { root: PUBLIC_DIR, prefix: '/static/', index: false, list: false });
  await app.register(fastifyView, {
    engine: { eta: new Eta({ views: VIEWS_DIR, cache: config.production, autoEscape: true }) },
    templates: VIEWS_DIR,
    defaultContext: { firstLook: config.mode === 'first-look' },
  });

  registerErrorPages(app);
  registerHealthRoutes(app, database);

  app.get('/', async (_request, reply) => reply.view('pages/home', { title: 'Welcome' }));

  return app;
}

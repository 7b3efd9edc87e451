// buildApp(): the whole web application, the same in production and in tests; main.ts only wires the process.
import { randomUUID } from 'node:crypto';
import { isIP } from 'node:net';
import fastifyFormbody from '@fastify/formbody';
import fastifyHelmet from '@fastify/helmet';
import fastifyRateLimit from '@fastify/rate-limit';
import fastifyStatic from '@fastify/static';
import fastifyView from '@fastify/view';
import { Eta } from 'eta';
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import type { DestinationStream } from 'pino';
import { registerAccountRoutes } from './accounts/account.routes.js';
import { registerArchiveRoutes } from './archives/archive.routes.js';
import { registerDownloadRoutes } from './archives/download.routes.js';
import { registerAuth } from './auth/auth.plugin.js';
import { registerAuthRoutes } from './auth/auth.routes.js';
import { registerSecondStepRoutes } from './auth/second-step.routes.js';
import { requireOperator } from './users/guards.js';
import { registerRememberMe } from './auth/remember-me.hooks.js';
import { systemClock, type Clock } from './clock.js';
import type { Config, Secrets } from './config.js';
import { createContext } from './context.js';
import type { DatabaseHandle } from './db/connect.js';
import { registerDeviceRoutes } from './devices/devices.routes.js';
import { registerCachePolicy } from './http/cache-policy.js';
import { BAD_REQUEST_MESSAGE, registerErrorPages } from './http/errors.js';
import { registerHealthRoutes } from './http/health.routes.js';
import { fastifyLimitOptions, HTTP_LIMITS, type HttpLimits } from './http/limits.js';
import { rateLimitSettings } from './http/rate-limit.js';
import { databaseRateLimitStore } from './http/rate-limit-store.js';
import { loggerOptions } from './log.js';
import { registerMailboxRoutes } from './mail/mailbox.routes.js';
import { registerMetricsListener } from './metrics/metrics-listener.js';
import { registerMetricsRoutes } from './metrics/metrics.routes.js';
import { outboxRoutes } from './mail/outbox.routes.js';
import { registerOperatorRoutes } from './operator/operator.routes.js';
import { registerRequestLogRoutes } from './operator/request-log.routes.js';
import { registerLogRoutes } from './operator/log.routes.js';
import { registerActivityRoutes } from './operator/activity.routes.js';
import { registerCustomerRoutes } from './operator/customers.routes.js';
import { PUBLIC_DIR, VIEWS_DIR } from './paths.js';
import { registerTwoFactor } from './two-factor/two-factor.plugin.js';
import { registerTwoFactorRoutes } from './two-factor/two-factor.routes.js';

export interface AppDependencies {
  config: Config & { secrets: Secrets };
  database: DatabaseHandle;
  /** Where log lines go; tests pass a stream to read them back. Defaults to stdout. */
  logStream?: DestinationStream;
  /** What "now" is for sessions, blocks and token expiry; tests pass one they can move. */
  clock?: Clock;
  /** The client connection limits; tests shorten them. */
  httpLimits?: Partial<HttpLimits>;
}

export async function buildApp({ config, database, logStream, clock, httpLimits }: AppDependencies): Promise<FastifyInstance> {
  const limits = { ...HTTP_LIMITS, ...httpLimits };
  const app = Fastify({
    ...fastifyLimitOptions(limits),
    logger: loggerOptions(config.logLevel, logStream),
    genReqId: () => randomUUID(),
    // Forms are small; a larger body is refused with 413 before it is parsed.
    bodyLimit: 64 * 1024,
    // request.ip and request.protocol believe X-Forwarded-* only from these proxies; from anyone else the header is ignored.
    trustProxy: config.auth.trustProxy.length > 0 ? config.auth.trustProxy : false,
    // A URL Fastify cannot even route (e.g. "/%") gets the same plain page as any other bad request.
    // (Fastify hands this hook a bare reply without the view decorator, hence app.view.)
    frameworkErrors: (_error, request, reply) => {
      void app
        .view('errors/error', { title: 'That did not work', status: 400, message: BAD_REQUEST_MESSAGE, requestId: request.id })
        .then((html) => (reply as FastifyReply).code(400).type('text/html; charset=utf-8').send(html));
    },
  });
  // Behind a trusted proxy, request.ip is whatever the proxy forwarded; a value that is not an IP
  // address is refused here, before sign-in attempts, sessions or the audit log try to store it.
  app.addHook('onRequest', async (request, reply) => {
    if (isIP(request.ip) === 0) {
      request.log.warn({ forwardedFor: request.headers['x-forwarded-for'] }, 'refused: client address is not an IP address');
      return reply
        .code(400)
        .view('errors/error', { title: 'That did not work', status: 400, message: BAD_REQUEST_MESSAGE, requestId: request.id });
    }
  });
  app.server.maxConnections = limits.maxConnections;
  const ctx = createContext({ config, database, clock: clock ?? systemClock, log: app.log });
  app.decorate('ctx', ctx);
  app.addHook('onClose', async () => database.close());
  // Counts every answer, the refused and the unrouted too; /metrics itself only where configured.
  registerMetricsRoutes(app);
  registerMetricsListener(app);

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
  registerCachePolicy(app);
  await app.register(fastifyFormbody);
  await app.register(fastifyStatic, { root: PUBLIC_DIR, prefix: '/static/', index: false, list: false });
  await app.register(fastifyView, {
    engine: { eta: new Eta({ views: VIEWS_DIR, cache: config.production, autoEscape: true }) },
    templates: VIEWS_DIR,
    // mailbox: mail goes to the outbox (first look), so each user reads theirs at /mailbox.
    defaultContext: { firstLook: config.mode === 'first-look', mailbox: config.mail.smtpUrl === null },
  });
  // HTTPS, session cookie and store, request.user, CSRF: before any route, so none can miss them.
  await registerAuth(app);
  // Then a browser without a live session may sign in from its remember-me cookie, and a user who
  // must use two-factor but has not enrolled reaches only enrolment (both hooks run after request.user is set).
  registerRememberMe(app);
  registerTwoFactor(app);
  registerTwoFactorRoutes(app);
  registerSecondStepRoutes(app);
  registerDeviceRoutes(app);
  // Only routes with their own config.rateLimit are limited (the pages that call the backup host).
  await app.register(fastifyRateLimit, { ...rateLimitSettings, global: false, store: databaseRateLimitStore(database.db) });

  registerErrorPages(app);
  registerHealthRoutes(app, database);
  registerAuthRoutes(app);
  registerAccountRoutes(app);
  registerArchiveRoutes(app);
  registerDownloadRoutes(app);
  registerOperatorRoutes(app);
  registerRequestLogRoutes(app);
  registerLogRoutes(app);
  registerActivityRoutes(app);
  registerCustomerRoutes(app);
  // First-look only (it returns at once otherwise); the outbox holds everyone's reset links.
  await app.register(outboxRoutes, { preHandler: requireOperator });
  registerMailboxRoutes(app);

  app.get('/', async (_request, reply) => reply.view('pages/home', { title: 'Welcome' }));

  return app;
}

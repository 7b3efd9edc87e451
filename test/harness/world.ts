// The one way to start a portal test: the production app on the file's own database, and what the test asks for besides.
import type { FastifyInstance } from 'fastify';
import type { Config } from '../../src/config.js';
import type { HttpLimits } from '../../src/http/limits.js';
import { buildTestApp, type TestApp } from './app.js';
import { launchBrowser, type TestBrowser } from './browser.js';
import { createTestDatabase, type TestDatabase } from './database.js';
import { createSmtpSink, type SmtpSink } from './smtp-sink.js';

export interface PortalWorldOptions {
  /** Settings in their environment form (ARCHWAY_*). */
  env?: Record<string, string>;
  /** Settings that have no environment form in tests, e.g. a local backup host. */
  overrides?: Partial<Omit<Config, 'secrets'>>;
  httpLimits?: Partial<HttpLimits>;
  /** An SMTP sink the app sends to: 'up', or 'down' (its port reserved, as a relay that is down). */
  smtp?: 'up' | 'down';
  /** Listen on loopback, for clients that speak real HTTP (world.origin). */
  listen?: boolean;
  /** A headless Chromium to drive the pages (implies listen). */
  browser?: boolean;
  /** Routes only the test needs, added before the app is ready. */
  testRoutes?: (app: FastifyInstance) => void;
}

export interface PortalWorld extends TestApp {
  database: TestDatabase;
  /** The SMTP sink; only in a world started with `smtp`. */
  readonly sink: SmtpSink;
  /** http://127.0.0.1:<port> of the app; only in a world started with `listen` or `browser`. */
  readonly origin: string;
  /** Only in a world started with `browser`. */
  readonly browser: TestBrowser;
  close(): Promise<void>;
}

function asked<T>(value: T | null, what: string, option: string): T {
  if (value === null) throw new Error(`this world has no ${what}: start it with { ${option} }`);
  return value;
}

export async function startPortalWorld(options: PortalWorldOptions = {}): Promise<PortalWorld> {
  const database = await createTestDatabase();
  const sink = options.smtp === undefined ? null : await createSmtpSink({ start: options.smtp === 'up' });
  const env = sink === null ? options.env : { ARCHWAY_SMTP_URL: sink.url, ...options.env };
  const subject = await buildTestApp(database.handle, database.url, env, options.overrides, options.httpLimits);
  options.testRoutes?.(subject.app);
  const origin = options.listen || options.browser ? await subject.app.listen({ host: '127.0.0.1', port: 0 }) : null;
  await subject.app.ready();
  const browser = options.browser ? await launchBrowser() : null;
  return {
    ...subject,
    database,
    get sink() {
      return asked(sink, 'SMTP sink', "smtp: 'up'");
    },
    get origin() {
      return asked(origin, 'listening address', 'listen: true');
    },
    get browser() {
      return asked(browser, 'browser', 'browser: true');
    },
    async close() {
      await browser?.close();
      await subject.app.close();
      await sink?.stop();
      await database.drop();
    },
  };
}

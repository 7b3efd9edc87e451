// Builds the production app for a test, on the test file's own database, with its log lines captured.
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/app.js';
import { AdjustableClock } from '../../src/clock.js';
import { loadConfig, type Config, type Secrets } from '../../src/config.js';
import type { DatabaseHandle } from '../../src/db/connect.js';
import type { HttpLimits } from '../../src/http/limits.js';

export const TEST_SECRETS = {
  ARCHWAY_SESSION_SECRET: 'test-session-secret-0123456789abcdef-0123456789',
  ARCHWAY_ENCRYPTION_KEY: '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff',
  ARCHWAY_PASSWORD_PEPPER: 'test-password-pepper-0123456789abcdef-012345678',
};

export function testConfig(databaseUrl: string, env: Record<string, string> = {}): Config & { secrets: Secrets } {
  // inject() speaks plain HTTP; tests of the HTTPS rules pass ARCHWAY_REQUIRE_HTTPS=true and a trusted proxy's headers.
  return loadConfig({
    ARCHWAY_DATABASE_URL: databaseUrl,
    ARCHWAY_LOG_LEVEL: 'info',
    ARCHWAY_SMTP_URL: 'smtp://127.0.0.1:9',
    ARCHWAY_REQUIRE_HTTPS: 'false',
    ...TEST_SECRETS,
    ...env,
  }) as Config & { secrets: Secrets };
}

export interface TestApp {
  app: FastifyInstance;
  /** Every log line written so far, as text. */
  logText(): string;
  /** The app's clock (app.clock): move it forward to expire sessions, blocks and tokens. */
  clock: AdjustableClock;
}

/** `overrides` replaces settings that have no environment form in tests (e.g. a local backup host). */
export async function buildTestApp(
  database: DatabaseHandle & { url?: string },
  url: string,
  env: Record<string, string> = {},
  overrides: Partial<Omit<Config, 'secrets'>> = {},
  httpLimits: Partial<HttpLimits> = {},
): Promise<TestApp> {
  const lines: string[] = [];
  const logStream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  const clock = new AdjustableClock();
  const app = await buildApp({ config: { ...testConfig(url, env), ...overrides }, database, logStream, clock, httpLimits });
  return { app, logText: () => lines.join(''), clock };
}

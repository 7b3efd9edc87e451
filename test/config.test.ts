import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';
import { TEST_SECRETS } from './harness/app.js';

const DB = 'postgres://archway:pw@db.internal:5432/archway';

function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig(env, '/srv/archway');
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
}

function secretFile(content: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'archway-config-'));
  const file = path.join(dir, 'secret');
  writeFileSync(file, content, { mode: 0o600 });
  return file;
}

describe('configuration', () => {
  it('starts in first-look mode on loopback with no settings at all', () => {
    const config = loadConfig({}, '/srv/archway');
    expect(config).toMatchObject({ mode: 'first-look', host: '127.0.0.1', port: 3000, databaseUrl: null, secrets: null, migrateOnStart: true });
    expect(config.dataDir).toBe('/srv/archway/var');
    expect(Object.isFrozen(config)).toBe(true);
  });

  it('runs in server mode with a database URL and all three secrets', () => {
    const config = loadConfig({ ARCHWAY_DATABASE_URL: DB, ...TEST_SECRETS, ARCHWAY_PUBLIC_URL: 'https://portal.example.net/' });
    expect(config.mode).toBe('server');
    expect(config.publicUrl).toBe('https://portal.example.net');
    expect(config.secrets?.encryptionKey).toHaveLength(32);
    expect(config.migrateOnStart).toBe(false);
  });

  it('names a malformed database URL without repeating its password', () => {
    const problems = problemsOf({ ARCHWAY_DATABASE_URL: 'not a url with hunter2', ...TEST_SECRETS });
    expect(problems).toEqual(['ARCHWAY_DATABASE_URL is not a valid URL.']);
    expect(problems.join()).not.toContain('hunter2');
  });

  it('refuses a database URL of another kind', () => {
    expect(problemsOf({ ARCHWAY_DATABASE_URL: 'mysql://x@y/z', ...TEST_SECRETS })).toEqual([
      'ARCHWAY_DATABASE_URL must start with postgres:// or postgresql://.',
    ]);
  });

  it('reports every missing secret in server mode, each in its own line', () => {
    expect(problemsOf({ ARCHWAY_DATABASE_URL: DB })).toEqual([
      'ARCHWAY_SESSION_SECRET (or ARCHWAY_SESSION_SECRET_FILE) is missing.',
      'ARCHWAY_PASSWORD_PEPPER (or ARCHWAY_PASSWORD_PEPPER_FILE) is missing.',
      'ARCHWAY_ENCRYPTION_KEY (or ARCHWAY_ENCRYPTION_KEY_FILE) is missing.',
    ]);
  });

  it('refuses secrets that are too short and keys that are not 32 bytes', () => {
    expect(
      problemsOf({ ARCHWAY_DATABASE_URL: DB, ARCHWAY_SESSION_SECRET: 'short', ARCHWAY_PASSWORD_PEPPER: 'x'.repeat(31), ARCHWAY_ENCRYPTION_KEY: 'correct horse battery staple' }),
    ).toEqual([
      'ARCHWAY_SESSION_SECRET is too short: use at least 32 random characters.',
      'ARCHWAY_PASSWORD_PEPPER is too short: use at least 32 random characters.',
      'ARCHWAY_ENCRYPTION_KEY must be 32 random bytes as 64 hex characters or 44 base64 characters.',
    ]);
  });

  it('reads secrets from *_FILE and trims the trailing newline', () => {
    const config = loadConfig({
      ARCHWAY_DATABASE_URL: DB,
      ARCHWAY_SESSION_SECRET_FILE: secretFile(`${TEST_SECRETS.ARCHWAY_SESSION_SECRET}\n`),
      ARCHWAY_ENCRYPTION_KEY_FILE: secretFile(`${Buffer.alloc(32, 7).toString('base64')}\n`),
      ARCHWAY_PASSWORD_PEPPER: TEST_SECRETS.ARCHWAY_PASSWORD_PEPPER,
    });
    expect(config.secrets?.sessionSecret).toBe(TEST_SECRETS.ARCHWAY_SESSION_SECRET);
    expect(config.secrets?.encryptionKey.equals(Buffer.alloc(32, 7))).toBe(true);
  });

  it('refuses a secret given both directly and as a file', () => {
    expect(problemsOf({ ...TEST_SECRETS, ARCHWAY_DATABASE_URL: DB, ARCHWAY_SESSION_SECRET_FILE: secretFile('x'.repeat(40)) })).toEqual([
      'ARCHWAY_SESSION_SECRET and ARCHWAY_SESSION_SECRET_FILE are both set; set only one of them.',
      'ARCHWAY_SESSION_SECRET (or ARCHWAY_SESSION_SECRET_FILE) is missing.',
    ]);
  });

  it('says when a secret file cannot be read or is empty', () => {
    expect(problemsOf({ ...TEST_SECRETS, ARCHWAY_DATABASE_URL: DB, ARCHWAY_SESSION_SECRET: '', ARCHWAY_SESSION_SECRET_FILE: '/nonexistent/secret' })).toContain(
      'ARCHWAY_SESSION_SECRET_FILE cannot be read (ENOENT).',
    );
    expect(problemsOf({ ...TEST_SECRETS, ARCHWAY_DATABASE_URL: DB, ARCHWAY_PASSWORD_PEPPER: '', ARCHWAY_PASSWORD_PEPPER_FILE: secretFile('\n') })).toContain(
      'ARCHWAY_PASSWORD_PEPPER_FILE names an empty file.',
    );
  });

  it('refuses first-look mode under NODE_ENV=production', () => {
    expect(problemsOf({ NODE_ENV: 'production' })).toEqual([
      'NODE_ENV is production but ARCHWAY_DATABASE_URL is not set: first-look mode (embedded database, generated secrets) is not for production.',
      "ARCHWAY_PUBLIC_URL is missing: links in emails need the portal's https:// address.",
    ]);
  });

  it('requires an https public URL in production', () => {
    expect(problemsOf({ NODE_ENV: 'production', ARCHWAY_DATABASE_URL: DB, ...TEST_SECRETS })).toEqual([
      "ARCHWAY_PUBLIC_URL is missing: links in emails need the portal's https:// address.",
    ]);
    expect(problemsOf({ NODE_ENV: 'production', ARCHWAY_DATABASE_URL: DB, ...TEST_SECRETS, ARCHWAY_PUBLIC_URL: 'http://portal.example.net' })).toEqual([
      'ARCHWAY_PUBLIC_URL must be https:// in production.',
    ]);
  });

  it('keeps first-look mode on loopback', () => {
    expect(problemsOf({ ARCHWAY_HOST: '0.0.0.0' })).toEqual(['ARCHWAY_HOST is "0.0.0.0": first-look mode listens on loopback only (127.0.0.1 or ::1).']);
  });

  it('names a bad port, log level and boolean together', () => {
    expect(problemsOf({ ARCHWAY_PORT: '70000', ARCHWAY_LOG_LEVEL: 'loud', ARCHWAY_MIGRATE_ON_START: 'maybe' })).toEqual([
      'ARCHWAY_PORT must be a whole number from 0 to 65535 (got "70000").',
      'ARCHWAY_LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent (got "loud").',
      'ARCHWAY_MIGRATE_ON_START must be true or false (got "maybe").',
    ]);
  });
});

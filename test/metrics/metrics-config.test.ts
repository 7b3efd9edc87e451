// The /metrics settings: what start-up accepts, and one clear message for each thing it refuses.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';
import { TEST_SECRETS } from '../harness/app.js';
import { TOKEN } from './exposition.js';

const SERVER = {
  ARCHWAY_DATABASE_URL: 'postgres://archway:pw@db.internal:5432/archway',
  ARCHWAY_SMTP_URL: 'smtp://mail.internal:587',
  ...TEST_SECRETS,
};
const dir = mkdtempSync(path.join(tmpdir(), 'archway-metrics-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig(env, dir);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
}

function file(name: string, content: string): string {
  const where = path.join(dir, name);
  writeFileSync(where, content, { mode: 0o600 });
  return where;
}

describe('metrics settings', () => {
  it('serves no /metrics by default', () => {
    expect(loadConfig(SERVER, dir).metrics).toEqual({ listen: null, token: null });
  });

  it('reads a listen address, IPv4 or bracketed IPv6, and a token from the environment or from a file', () => {
    expect(loadConfig({ ...SERVER, ARCHWAY_METRICS_LISTEN: '10.0.0.5:9464' }, dir).metrics.listen).toEqual({
      host: '10.0.0.5',
      port: 9464,
    });
    expect(loadConfig({ ...SERVER, ARCHWAY_METRICS_LISTEN: '[::1]:9464' }, dir).metrics.listen).toEqual({ host: '::1', port: 9464 });
    expect(loadConfig({ ...SERVER, ARCHWAY_METRICS_TOKEN: TOKEN }, dir).metrics.token).toBe(TOKEN);
    expect(loadConfig({ ...SERVER, ARCHWAY_METRICS_TOKEN_FILE: file('token', `${TOKEN}\n`) }, dir).metrics.token).toBe(TOKEN);
  });

  it('refuses a listen address that is not an IP address and port', () => {
    for (const bad of [
      '9464',
      '127.0.0.1',
      'metrics.internal:9464',
      '127.0.0.1:99999',
      '::1:9464',
      'http://127.0.0.1:9464',
      '127.0.0.1:94 64',
    ]) {
      expect(problemsOf({ ...SERVER, ARCHWAY_METRICS_LISTEN: bad })).toEqual([
        `ARCHWAY_METRICS_LISTEN must be an IP address and port like 127.0.0.1:9464 or [::1]:9464 (got "${bad}").`,
      ]);
    }
  });

  it('keeps first look on loopback for metrics too', () => {
    expect(problemsOf({ ARCHWAY_METRICS_LISTEN: '0.0.0.0:9464' })).toEqual([
      'ARCHWAY_METRICS_LISTEN is "0.0.0.0:9464": first-look mode listens on loopback only (127.0.0.1 or ::1).',
    ]);
    expect(loadConfig({ ARCHWAY_METRICS_LISTEN: '127.0.0.1:9464' }, dir).metrics.listen).toEqual({ host: '127.0.0.1', port: 9464 });
  });

  it('refuses a short token, a token with spaces, an empty token file, an unreadable one, and both forms at once', () => {
    expect(problemsOf({ ...SERVER, ARCHWAY_METRICS_TOKEN: 'short-token' })).toEqual([
      'ARCHWAY_METRICS_TOKEN is too short: use at least 32 random characters.',
    ]);
    expect(problemsOf({ ...SERVER, ARCHWAY_METRICS_TOKEN: `${TOKEN} ${TOKEN}` })).toEqual([
      'ARCHWAY_METRICS_TOKEN must be printable ASCII without spaces (e.g. `openssl rand -hex 32`).',
    ]);
    expect(problemsOf({ ...SERVER, ARCHWAY_METRICS_TOKEN_FILE: file('empty', '\n') })).toEqual([
      'ARCHWAY_METRICS_TOKEN_FILE names an empty file.',
    ]);
    expect(problemsOf({ ...SERVER, ARCHWAY_METRICS_TOKEN_FILE: path.join(dir, 'missing') })).toEqual([
      'ARCHWAY_METRICS_TOKEN_FILE cannot be read (ENOENT).',
    ]);
    expect(problemsOf({ ...SERVER, ARCHWAY_METRICS_TOKEN: TOKEN, ARCHWAY_METRICS_TOKEN_FILE: file('both', TOKEN) })).toEqual([
      'ARCHWAY_METRICS_TOKEN and ARCHWAY_METRICS_TOKEN_FILE are both set; set only one of them.',
    ]);
  });

  it('never repeats the token in a message', () => {
    const almost = TOKEN.slice(0, 20);
    const problems = problemsOf({ ...SERVER, ARCHWAY_METRICS_TOKEN: almost, ARCHWAY_METRICS_LISTEN: 'nowhere' });
    expect(problems).toHaveLength(2);
    expect(problems.join('\n')).not.toContain(almost);
  });
});

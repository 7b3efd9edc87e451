import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { TEST_SECRETS } from '../harness/app.js';
import { runCli, startServer } from '../harness/cli.js';
import { createEmptyDatabase } from '../harness/database.js';

const dirs: string[] = [];
function freshDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'archway-cli-'));
  dirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describe('the archway command line', () => {
  it('lists its commands with --help', async () => {
    const result = await runCli(['--help']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^Usage: archway <command> \[options\]/);
    expect(result.stdout).toMatch(/\n {2}serve +Run the web portal\.\n/);
    expect(result.stdout).toMatch(/\n {2}migrate +Apply pending database migrations\.\n/);
  });

  it("shows a command's own usage with <command> --help", async () => {
    const result = await runCli(['migrate', '--help']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^Usage: archway migrate\n/);
  });

  it('prints usage and fails when no command is given', async () => {
    const result = await runCli([]);
    expect(result.code).toBe(64);
    expect(result.stdout).toContain('Usage: archway <command>');
  });

  it('refuses an unknown command with a clear error', async () => {
    const result = await runCli(['destroy-everything']);
    expect(result.code).toBe(64);
    expect(result.stderr).toMatch(
      /^archway: Unknown command "destroy-everything"\. Commands: serve, migrate(, [a-z-]+)*\.\nRun "archway --help" for usage\.\n$/,
    );
  });

  it('refuses an unknown flag and a stray argument', async () => {
    const flag = await runCli(['serve', '--port=80']);
    expect(flag.code).toBe(64);
    expect(flag.stderr).toContain("Unknown option '--port'");
    const stray = await runCli(['migrate', 'now']);
    expect(stray.code).toBe(64);
    expect(stray.stderr).toContain('Unexpected argument "now" for "archway migrate".');
  });

  it('names every configuration problem and exits 78 before doing anything', async () => {
    const result = await runCli(['migrate'], { env: { ARCHWAY_DATABASE_URL: 'postgres://db/x', ARCHWAY_SESSION_SECRET: 'short' } });
    expect(result.code).toBe(78);
    expect(result.stderr).toContain('Archway cannot start; fix the configuration:');
    expect(result.stderr).toContain('  - ARCHWAY_SESSION_SECRET is too short: use at least 32 random characters.');
    expect(result.stderr).toContain('  - ARCHWAY_PASSWORD_PEPPER (or ARCHWAY_PASSWORD_PEPPER_FILE) is missing.');
  });

  it('migrates a PostgreSQL database and says when there is nothing left to do', async () => {
    const empty = await createEmptyDatabase();
    try {
      const env = { ARCHWAY_DATABASE_URL: empty.url, ARCHWAY_SMTP_URL: 'smtp://127.0.0.1:9', ...TEST_SECRETS };
      const first = await runCli(['migrate'], { env });
      expect(first.stderr).toBe('');
      expect(first.stdout).toMatch(/^Applied: 0001_foundation(, \d{4}_\w+)*\n$/);
      expect(first.code).toBe(0);
      const second = await runCli(['migrate'], { env });
      expect(second.stdout).toBe('Nothing to apply: the database is up to date.\n');
    } finally {
      await empty.drop();
    }
  });

  it('refuses first-look mode with NODE_ENV=production', async () => {
    const cwd = freshDir();
    const result = await runCli(['serve'], { cwd, env: { NODE_ENV: 'production' } });
    expect(result.code).toBe(78);
    expect(result.stderr).toContain('first-look mode (embedded database, generated secrets) is not for production');
    expect(() => statSync(path.join(cwd, 'var'))).toThrow();
  });
});

describe('first look: archway serve in an empty directory with no settings', () => {
  it('serves the start page on 127.0.0.1 with the first-look banner, keeps its secrets 0600, and stops cleanly on SIGTERM', async () => {
    const cwd = freshDir();
    const server = await startServer({ cwd });
    try {
      expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      const page = await fetch(`${server.url}/`);
      expect(page.status).toBe(200);
      const html = await page.text();
      expect(html).toContain('First-look mode: an embedded database and generated secrets on this computer only.');
      expect((await fetch(`${server.url}/readyz`)).status).toBe(200);

      expect(statSync(path.join(cwd, 'var/secrets.json')).mode & 0o777).toBe(0o600);
      const secrets = JSON.parse(readFileSync(path.join(cwd, 'var/secrets.json'), 'utf8')) as Record<string, string>;
      expect(Object.keys(secrets).sort()).toEqual(['encryptionKey', 'passwordPepper', 'sessionSecret']);
      expect(server.output()).toContain('first-look mode: generated new secrets');
      for (const value of Object.values(secrets)) expect(server.output()).not.toContain(value);

      // A second process on the same embedded database would corrupt it; it is told why instead.
      const second = await runCli(['users', 'add', '--email', 'late@example.net', '--domain', 'late.example.net', '--plan', 'basic'], {
        cwd,
      });
      expect(second.code).toBe(1);
      expect(second.stderr).toMatch(/^archway: The embedded database is in use by another Archway process \(pid \d+\)\. Stop it first/);
      expect((await fetch(`${server.url}/readyz`)).status).toBe(200);
    } finally {
      expect(await server.stop('SIGTERM')).toBe(0);
    }
    expect(server.output()).toContain('stopping: finishing in-flight requests');
  });
});

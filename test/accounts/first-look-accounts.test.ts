import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { TEST_SECRETS } from '../harness/app.js';
import { startServer } from '../harness/cli.js';
import { createTestDatabase } from '../harness/database.js';

const dirs: string[] = [];
function freshDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'archway-first-look-'));
  dirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** Signs in through the real pages over HTTP, as a browser without JavaScript would. */
async function signIn(base: string, email: string, password: string): Promise<{ status: number; location: string | null }> {
  const page = await fetch(`${base}/sign-in`);
  const cookies = page.headers
    .getSetCookie()
    .map((c) => c.split(';')[0])
    .join('; ');
  const token = /name="_csrf" value="([^"]+)"/.exec(await page.text())?.[1] ?? '';
  const answer = await fetch(`${base}/sign-in`, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: cookies },
    body: new URLSearchParams({ _csrf: token, email, password }).toString(),
  });
  return { status: answer.status, location: answer.headers.get('location') };
}

describe('first-look demo accounts', () => {
  it('are created on the first start, shown once on the console and kept in a 0600 file, and work', async () => {
    const cwd = freshDir();
    const file = path.join(cwd, 'var/first-look-accounts.txt');
    const first = await startServer({ cwd });
    let lines: string[];
    try {
      expect(statSync(file).mode & 0o777).toBe(0o600);
      lines = readFileSync(file, 'utf8').trimEnd().split('\n');
      expect(lines).toHaveLength(2);
      expect(lines[0]).toMatch(/^operator demo-operator@example\.net \/set-password\?token=[A-Za-z0-9_.-]+$/);
      expect(lines[1]).toMatch(/^customer demo-customer@example\.net [A-Za-z0-9_-]{20}$/);
      const output = first.output();
      expect(output).toContain('First-look accounts (shown this once; also kept in the file below, mode 0600):');
      const [, customerEmail, customerPassword] = lines[1]!.split(' ') as [string, string, string];
      expect(output.split(customerPassword).length - 1).toBe(1);
      expect(output).toMatch(new RegExp(`  customer +${customerEmail.replace(/\./g, '\\.')}  ${customerPassword}\\n`));
      expect(await signIn(first.url, customerEmail, customerPassword)).toEqual({ status: 303, location: '/account' });
      // The operator has no password yet: its one-time link sets one together with two-factor sign-in.
      const setUp = lines[0]!.split(' ')[2]!;
      expect(output).toContain(`  operator  demo-operator@example.net  set the password and two-factor sign-in at ${first.url}${setUp}\n`);
      const opened = await fetch(`${first.url}${setUp}`, { redirect: 'manual' });
      expect([opened.status, opened.headers.get('location')]).toEqual([303, '/set-password']);
      const page = await fetch(`${first.url}/set-password`, {
        headers: {
          cookie: opened.headers
            .getSetCookie()
            .map((c) => c.split(';')[0])
            .join('; '),
        },
      });
      expect(await page.text()).toContain('<h1>Set up your operator account</h1>');
      expect(await signIn(first.url, 'demo-customer@example.net', 'Wrong-Password-1')).toMatchObject({ status: 401 });
    } finally {
      expect(await first.stop()).toBe(0);
    }

    const second = await startServer({ cwd });
    try {
      expect(second.output()).not.toContain('First-look accounts');
      for (const line of lines) expect(second.output()).not.toContain(line.split(' ')[2]!);
      expect(readFileSync(file, 'utf8').trimEnd().split('\n')).toEqual(lines);
    } finally {
      expect(await second.stop()).toBe(0);
    }
    // Two first-look starts, the first with an empty data directory (demo backups included).
  }, 120_000);

  it('are never created in server mode', async () => {
    const cwd = freshDir();
    const database = await createTestDatabase();
    try {
      const server = await startServer({
        cwd,
        env: { ARCHWAY_DATABASE_URL: database.url, ARCHWAY_SMTP_URL: 'smtp://127.0.0.1:9', ...TEST_SECRETS },
      });
      try {
        expect(server.output()).not.toContain('First-look accounts');
      } finally {
        await server.stop();
      }
      expect(existsSync(path.join(cwd, 'var/first-look-accounts.txt'))).toBe(false);
      expect(await database.handle.db.selectFrom('users').select('id').execute()).toEqual([]);
    } finally {
      await database.drop();
    }
  });
});

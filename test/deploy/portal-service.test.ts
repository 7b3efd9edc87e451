// The portal host's shipped systemd unit and logrotate config: what systemd and logrotate make of them.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { PROJECT_ROOT } from '../../src/paths.js';
import { startPortalNginx, type PrivateTlsNginx } from '../harness/nginx.js';
import { findProgram, run, runOk } from '../harness/sshd.js';

const UNIT = join(PROJECT_ROOT, 'deploy/systemd/archway-portal.service');

let base: string;
beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'archway-portal-service-'));
});
afterAll(async () => {
  await rm(base, { recursive: true, force: true });
});

/** The unit's `Key=value` lines of one key, in order. */
function directives(unit: string, key: string): string[] {
  return [...unit.matchAll(new RegExp(`^${key}=(.*)$`, 'gm'))].map((m) => m[1]!);
}

describe('the archway-portal systemd unit', () => {
  it('is a unit that systemd-analyze verifies', async () => {
    const out = await run(findProgram('systemd-analyze'), ['verify', UNIT]);
    expect(out.stderr).toBe('');
    expect(out.code).toBe(0);
  });

  it('runs archway serve as its own user with no capabilities, no new privileges, a read-only system and a private /tmp', async () => {
    const unit = await readFile(UNIT, 'utf8');
    expect(directives(unit, 'ExecStart')).toEqual(['/usr/bin/node /opt/archway/dist/src/main.js serve']);
    expect(directives(unit, 'User')).toEqual(['archway-portal']);
    expect(directives(unit, 'NoNewPrivileges')).toEqual(['yes']);
    expect(directives(unit, 'ProtectSystem')).toEqual(['strict']);
    expect(directives(unit, 'PrivateTmp')).toEqual(['yes']);
    // Empty: the bounding set holds no capability at all.
    expect(directives(unit, 'CapabilityBoundingSet')).toEqual(['']);
    expect(directives(unit, 'RestartPreventExitStatus')).toEqual(['78']);
  });

  it('hands every secret over as a credential file that the configuration reads, never as a value in the environment', async () => {
    const unit = await readFile(UNIT, 'utf8');
    const credentialsDir = join(base, 'credentials');
    await mkdir(credentialsDir, { mode: 0o700 });
    const values: Record<string, string> = {
      'database-url': 'postgres://archway:s3cret@127.0.0.1:5432/archway',
      'session-secret': randomBytes(32).toString('hex'),
      'encryption-key': randomBytes(32).toString('hex'),
      'password-pepper': randomBytes(32).toString('hex'),
      'smtp-url': 'smtp://archway:s3cret@127.0.0.1:587',
      'backup-host-key': '(the portal key)',
    };
    const loaded = directives(unit, 'LoadCredential').map((line) => line.split(':') as [string, string]);
    expect(loaded.map(([name]) => name).sort()).toEqual(Object.keys(values).sort());
    for (const [name, source] of loaded) {
      expect(source).toBe(`/etc/archway/credentials/${name}`);
      await writeFile(join(credentialsDir, name), `${values[name]}\n`, { mode: 0o600 });
    }
    // The Environment= lines as systemd expands them: %d is the credentials directory, %S /var/lib.
    const env: Record<string, string> = {
      ARCHWAY_PUBLIC_URL: 'https://backups.example.net',
      ARCHWAY_MAIL_FROM: 'Archway <archway@example.net>',
      ARCHWAY_BACKUP_HOST: 'backup-1.internal',
      ARCHWAY_BACKUP_HOST_FINGERPRINT: `SHA256:${'A'.repeat(43)}`,
    };
    for (const line of directives(unit, 'Environment')) {
      const [name, value] = line.split(/=(.*)/s) as [string, string];
      env[name] = value.replace('%d', credentialsDir).replace('%S', join(base, 'state'));
    }
    expect(Object.values(env).join('\n')).not.toMatch(/s3cret|[0-9a-f]{64}/);
    const config = loadConfig(env, base);
    expect(config.production).toBe(true);
    expect(config.databaseUrl).toBe(values['database-url']);
    expect(config.mail.smtpUrl).toBe(values['smtp-url']);
    expect(config.backupHosts.hosts[0]?.settings).toMatchObject({ privateKeyPath: join(credentialsDir, 'backup-host-key') });
  });
});

describe("the logrotate config for the vhosts' logs", () => {
  let upstream: Server;
  let nginx: PrivateTlsNginx;
  let dir: string;

  beforeAll(async () => {
    // The workers reopen the logs by path after a rotation, as the worker user: the path must be traversable.
    await chmod(base, 0o755);
    dir = join(base, 'nginx');
    upstream = createServer((_req, res) => res.writeHead(200).end('portal'));
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    nginx = await startPortalNginx({ dir, upstreamPort: (upstream.address() as { port: number }).port, serverName: 'portal.example.net' });
  });
  afterAll(async () => {
    await nginx?.stop();
    await new Promise((r) => upstream?.close(r));
  });

  async function logOf(path: string, wanted: string): Promise<string> {
    // nginx writes a line after the fact (a request's once answered): wait for that line itself.
    for (let i = 0; i < 200; i++) {
      const text = existsSync(path) ? await readFile(path, 'utf8') : '';
      if (text.includes(wanted)) return text;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`${wanted} never reached ${path}`);
  }

  it('renames the log, has NGINX reopen it, and keeps the newest old file uncompressed for watch', async () => {
    const logs = join(dir, 'logs');
    const shipped = await readFile(join(PROJECT_ROOT, 'deploy/logrotate/nginx'), 'utf8');
    const config = join(base, 'logrotate.conf');
    // The same stanza, pointed at the private nginx's log directory and pid file.
    await writeFile(config, shipped.replaceAll('/var/log/nginx/', `${logs}/`).replaceAll('/run/nginx.pid', join(dir, 'nginx.pid')), {
      mode: 0o644,
    });
    expect(await readFile(config, 'utf8')).not.toMatch(/\/var\/log\/nginx|\/run\/nginx\.pid/);

    await fetch(`http://127.0.0.1:${nginx.httpPort}/before-rotation`, { redirect: 'manual' });
    await logOf(join(logs, 'access.log'), '/before-rotation');

    // -f: rotate now whatever "daily" says; the state file keeps the system's own state out of it.
    await runOk(findProgram('logrotate'), ['-f', '-s', join(base, 'logrotate.state'), config]);
    // The workers reopen a moment after the signal: ask until a request's line lands in the new file.
    let current = '';
    for (let attempt = 0; attempt < 100 && !current.includes('/after-rotation'); attempt++) {
      await fetch(`http://127.0.0.1:${nginx.httpPort}/after-rotation-${attempt}`, { redirect: 'manual' });
      await new Promise((r) => setTimeout(r, 50));
      current = await readFile(join(logs, 'access.log'), 'utf8');
    }
    expect(current).toContain('/after-rotation');
    expect(current).not.toContain('/before-rotation');
    expect(await readFile(join(logs, 'access.log.1'), 'utf8')).toContain('/before-rotation');
    expect(existsSync(join(logs, 'access.log.1.gz'))).toBe(false);
    expect((await stat(join(logs, 'access.log'))).mode & 0o007).toBe(0);
  });
});

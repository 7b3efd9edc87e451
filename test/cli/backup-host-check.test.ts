import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBackupHost, type BackupHostFixture } from '../backup-host/fixture.js';
import { makeWorld } from '../dispatcher/world.js';
import { runCli } from '../harness/cli.js';

let host: BackupHostFixture;
beforeAll(async () => {
  host = await startBackupHost({ withNginx: false });
});
afterAll(async () => {
  await host?.stop();
});

function sshEnv(overrides: Record<string, string> = {}): Record<string, string> {
  return {
    ARCHWAY_BACKUP_HOST: host.sshd.host,
    ARCHWAY_BACKUP_HOST_PORT: String(host.sshd.port),
    ARCHWAY_BACKUP_HOST_USER: host.user.name,
    ARCHWAY_BACKUP_HOST_KEY_FILE: host.portalKey.privateKeyPath,
    ARCHWAY_BACKUP_HOST_FINGERPRINT: host.sshd.hostKeyFingerprint,
    ...overrides,
  };
}

describe('archway backup-host check', () => {
  it('reaches the backup host over SSH through the gate and prints what ping learned', async () => {
    const result = await runCli(['backup-host', 'check'], { env: sshEnv() });
    expect(result.stderr).toBe('');
    expect(result.stdout).toMatch(/^backup host: .+\n {2}dispatcher version: \S+\n {2}round trip: \d+ ms\n/);
    expect(result.stdout).toContain('  roots: backup ok, archive ok, link ok\n');
    expect(result.stdout).toMatch(/result: OK\n$/);
    expect(result.code).toBe(0);
  });

  it('refuses a backup host whose host key is not the pinned one', async () => {
    const result = await runCli(['backup-host', 'check'], { env: sshEnv({ ARCHWAY_BACKUP_HOST_FINGERPRINT: host.portalKey.fingerprint }) });
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/problem: .*host key/i);
    expect(result.stdout).toMatch(/result: NOT OK\n$/);
  });

  it('runs a local dispatcher for a first look', async () => {
    const world = makeWorld();
    const result = await runCli(['backup-host', 'check'], { env: { ARCHWAY_BACKUP_HOST_LOCAL_CONFIG: world.configPath } });
    expect(result.stdout).toContain('  roots: backup ok, archive ok, link ok\n');
    expect(result.code).toBe(0);
  });

  it('names what is missing when no backup host or only half of one is configured', async () => {
    const none = await runCli(['backup-host', 'check']);
    expect(none.code).toBe(78);
    expect(none.stderr).toBe(
      'archway: no backup host is configured: set ARCHWAY_BACKUP_HOSTS_FILE, ARCHWAY_BACKUP_HOST or ARCHWAY_BACKUP_HOST_LOCAL_CONFIG.\n',
    );

    const half = await runCli(['backup-host', 'check'], {
      env: { ARCHWAY_BACKUP_HOST: 'backup.example.net', ARCHWAY_BACKUP_HOST_FINGERPRINT: 'MD5:aa:bb' },
    });
    expect(half.code).toBe(78);
    expect(half.stderr).toContain('  - ARCHWAY_BACKUP_HOST_KEY_FILE is missing: the portal needs its SSH private key.\n');
    expect(half.stderr).toContain('  - ARCHWAY_BACKUP_HOST_FINGERPRINT must look like SHA256:<43 base64 characters>.\n');
  });

  it('refuses a subcommand it does not have', async () => {
    const result = await runCli(['backup-host', 'reboot']);
    expect(result.code).toBe(64);
    expect(result.stderr).toContain('Usage: archway backup-host check');
  });
});

describe('archway backup-host check with a hosts file', () => {
  it('checks one host by name or every host with --all, and says which is not OK', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'archway-check-'));
    try {
      const entry = (name: string, fingerprint: string) => ({
        name,
        address: host.sshd.host,
        port: host.sshd.port,
        user: host.user.name,
        keyFile: host.portalKey.privateKeyPath,
        fingerprint,
      });
      const file = join(dir, 'hosts.json');
      // The same host twice, once pinned to a wrong key: one good host and one that must be refused.
      writeFileSync(
        file,
        JSON.stringify({ hosts: [entry('east', host.sshd.hostKeyFingerprint), entry('west', host.portalKey.fingerprint)] }),
      );
      const env = { ARCHWAY_BACKUP_HOSTS_FILE: file };

      const east = await runCli(['backup-host', 'check', 'east'], { env });
      expect(east.code).toBe(0);
      expect(east.stdout).toMatch(/^\[east\]\nbackup host: .+\n {2}dispatcher version: /);
      expect(east.stdout).toMatch(/result: OK\n$/);

      const all = await runCli(['backup-host', 'check', '--all'], { env });
      expect(all.code).toBe(1);
      expect(all.stdout).toMatch(
        /^\[east\]\n[\s\S]*result: OK\n\[west\]\n[\s\S]*problem: .*host key[\s\S]*result: NOT OK\n1 of 2 backup hosts OK\n$/i,
      );

      const unknown = await runCli(['backup-host', 'check', 'north'], { env });
      expect(unknown.code).toBe(64);
      expect(unknown.stderr).toBe('archway: no backup host is named "north"; the fleet has: east, west.\n');

      const unnamed = await runCli(['backup-host', 'check'], { env });
      expect(unnamed.code).toBe(64);
      expect(unnamed.stderr).toContain('The fleet has 2 hosts: name one (east, west) or give --all.');
      const both = await runCli(['backup-host', 'check', 'east', '--all'], { env });
      expect(both.code).toBe(64);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// An attacker holding the portal's key can reach the dispatcher with one allowed word, and nothing else.
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run, findProgram } from '../harness/sshd.js';
import { startBackupHost, type BackupHostFixture } from './fixture.js';
import { rawExec, rawOtherRequest } from './ssh-exec.js';

let host: BackupHostFixture;

beforeAll(async () => {
  host = await startBackupHost({ withNginx: false });
  // Something for `rm -rf` to destroy, should it ever run.
  await mkdir(join(host.base, 'x'));
  await writeFile(join(host.base, 'x', 'keep'), 'still here');
});

afterAll(async () => {
  await host?.stop();
});

function asPortal(command: string | null, extra: { stdin?: string; env?: Record<string, string>; localAddress?: string } = {}) {
  return rawExec({
    host: host.sshd.host,
    port: host.sshd.port,
    username: host.user.name,
    privateKeyPath: host.portalKey.privateKeyPath,
    command,
    ...extra,
  });
}

describe('the gate behind the portal key', () => {
  it('runs ping and answers with one JSON object', async () => {
    const out = await asPortal('ping', { stdin: '{}' });
    expect(out.code).toBe(0);
    const answer = JSON.parse(out.stdout) as { ok: boolean; result: { version: string } };
    expect(answer.ok).toBe(true);
    expect(typeof answer.result.version).toBe('string');
  });

  const marker = (): string => join(host.base, 'marker');
  const hostile = [
    ['a destructive command', () => `rm -rf ${join(host.base, 'x')}`],
    ['a shell with a command', () => `sh -c 'touch ${marker()}'`],
    ['an action followed by a second command', () => `ping; touch ${marker()}`],
    ['an action and a command on a second line', () => `ping\ntouch ${marker()}`],
    ['an action joined with &&', () => `ping && touch ${marker()}`],
    ['a command substitution', () => `ping $(touch ${marker()})`],
    ['backticks', () => `\`touch ${marker()}\``],
    ['an action with an extra argument', () => 'ping extra'],
    ['an action with a trailing space', () => 'ping '],
    ['an action in other case', () => 'PING'],
    ['a glob that matches an action', () => 'p*'],
    ['the local-only watch', () => 'watch'],
    ['the local-only sweep', () => 'sweep'],
    ['the local-only check', () => 'check'],
    ['the dispatcher path itself', () => host.dispatcherPath],
    ['an empty command', () => ''],
  ] as const;

  for (const [what, command] of hostile) {
    it(`refuses ${what} and runs nothing`, async () => {
      const out = await asPortal(command(), { stdin: '{}' });
      expect(out.code).toBe(1);
      expect(out.stdout).toBe('');
      expect(out.stderr).toContain('archway-gate: refused');
      expect(existsSync(marker())).toBe(false);
    });
  }

  it('left the directory that `rm -rf` named in place', () => {
    expect(existsSync(join(host.base, 'x', 'keep'))).toBe(true);
  });

  it('refuses an interactive shell', async () => {
    const out = await asPortal(null);
    expect(out.code).toBe(1);
    expect(out.stderr).toContain('archway-gate: refused');
  });

  it('refuses sftp and TCP forwarding', async () => {
    const login = { host: host.sshd.host, port: host.sshd.port, username: host.user.name, privateKeyPath: host.portalKey.privateKeyPath };
    // sftp is a subsystem request: the forced command takes its place, and the gate refuses it.
    await expect(rawOtherRequest(login, 'sftp')).resolves.toMatch(/Unable to start subsystem/);
    await expect(rawOtherRequest(login, 'tcp-forward')).resolves.toMatch(/Channel open failure/);
    expect(existsSync(marker())).toBe(false);
  });

  it('ignores environment variables the client tries to pass (the dispatcher config stays the root-only one)', async () => {
    const out = await asPortal('ping', {
      stdin: '{}',
      env: { ARCHWAY_DISPATCHER_CONFIG: join(host.base, 'evil.json'), LD_PRELOAD: '/x.so' },
    });
    expect(out.code).toBe(0);
    expect(JSON.parse(out.stdout)).toMatchObject({ ok: true });
  });

  it('refuses the portal key from another address than its from= binding', async () => {
    await expect(asPortal('ping', { stdin: '{}', localAddress: '127.0.0.2' })).rejects.toThrow(/authentication/i);
  });

  it('refuses a key bound to another portal address even from loopback', async () => {
    await expect(
      rawExec({
        host: host.sshd.host,
        port: host.sshd.port,
        username: host.user.name,
        privateKeyPath: host.elsewhereKey.privateKeyPath,
        command: 'ping',
        stdin: '{}',
      }),
    ).rejects.toThrow(/authentication/i);
  });
});

describe('the sudoers rule', () => {
  const asUser = (args: string[]) => run(findProgram('runuser'), ['-u', host.user.name, '--', findProgram('sudo'), '-n', ...args]);

  it('lets the SSH user run the dispatcher with an allowed action', async () => {
    const out = await run(findProgram('runuser'), ['-u', host.user.name, '--', findProgram('sudo'), '-n', host.dispatcherPath, 'ping'], {
      input: '{}',
    });
    expect(out.code).toBe(0);
    expect(JSON.parse(out.stdout)).toMatchObject({ ok: true });
  });

  it('refuses a local-only action, a second argument and any other program', async () => {
    for (const args of [
      [host.dispatcherPath, 'watch'],
      [host.dispatcherPath, 'ping', 'extra'],
      [host.dispatcherPath],
      ['/bin/sh', '-c', 'id'],
    ]) {
      const out = await asUser(args);
      expect(out.code).toBe(1);
      expect(out.stderr).toMatch(/password is required|not allowed/);
    }
  });

  it('keeps the gate and the dispatcher out of the SSH user reach', async () => {
    const out = await run(findProgram('runuser'), [
      '-u',
      host.user.name,
      '--',
      '/bin/sh',
      '-c',
      `test -w ${host.gatePath} || test -r ${host.dispatcherPath} || test -r ${host.dispatcherConfigPath} || echo safe`,
    ]);
    expect(out.stdout.trim()).toBe('safe');
  });
});

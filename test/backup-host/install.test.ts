// The backup-host install script, run into a temporary prefix: what an operator gets on disk, twice over.
import { randomBytes } from 'node:crypto';
import { lstat, mkdtemp, readFile, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REMOTE_ACTIONS } from '../../src/protocol/index.js';
import { findProgram, generateKeyPair, REPO_ROOT, run, runOk, type RunResult } from '../harness/sshd.js';
import { DISPATCHER_BUNDLE } from './fixture.js';

const USER = `awi${randomBytes(4).toString('hex')}`;
let prefix: string;
let work: string;
let publicKeyFile: string;
let first: RunResult;
let second: RunResult;
let secretAfterFirst = '';

function install(): Promise<RunResult> {
  return run(join(REPO_ROOT, 'deploy', 'install-backup-host.sh'), [
    '--prefix',
    prefix,
    '--user',
    USER,
    '--portal-address',
    '192.0.2.10',
    '--public-key',
    publicKeyFile,
    '--backup-root',
    join(prefix, 'srv', 'backups'),
    '--download-base-url',
    'https://dl.example.net',
    '--portal-url',
    'https://portal.example.net/',
    '--tls-cert',
    join(work, 'cert.pem'),
    '--tls-key',
    join(work, 'key.pem'),
    '--dispatcher',
    DISPATCHER_BUNDLE,
  ]);
}

async function modeOf(path: string): Promise<string> {
  const st = await stat(path);
  return `${(st.mode & 0o7777).toString(8).padStart(4, '0')} ${st.uid}:${st.gid}`;
}

beforeAll(async () => {
  prefix = await mkdtemp(join(tmpdir(), 'archway-install-'));
  work = await mkdtemp(join(tmpdir(), 'archway-install-work-'));
  publicKeyFile = (await generateKeyPair(work, 'portal_ed25519')).privateKeyPath + '.pub';
  await runOk(findProgram('openssl'), [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-days',
    '1',
    '-subj',
    '/CN=dl.example.net',
    '-keyout',
    join(work, 'key.pem'),
    '-out',
    join(work, 'cert.pem'),
  ]);
  first = await install();
  secretAfterFirst = await readFile(join(prefix, 'etc/archway/secure-link.secret'), 'utf8').catch(() => '');
  second = await install();
});

afterAll(async () => {
  await run(findProgram('userdel'), ['--force', '--remove', USER]);
  if (prefix) await rm(prefix, { recursive: true, force: true });
  if (work) await rm(work, { recursive: true, force: true });
});

describe('deploy/install-backup-host.sh', () => {
  it('succeeds, and succeeds again on a second run without changing the secret', async () => {
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(second.code).toBe(0);
    expect(secretAfterFirst).toMatch(/^[A-Za-z0-9_-]{43}\n$/);
    expect(await readFile(join(prefix, 'etc/archway/secure-link.secret'), 'utf8')).toBe(secretAfterFirst);
  });

  it('creates the dedicated user with shell /bin/sh and an unusable password', async () => {
    const entry = (await runOk(findProgram('getent'), ['passwd', USER])).stdout.trim().split(':');
    expect(entry[6]).toBe('/bin/sh');
    const shadow = (await runOk(findProgram('getent'), ['shadow', USER])).stdout.split(':');
    expect(shadow[1]).toBe('*');
  });

  it('keeps the dispatcher, its config and the secret root-only, and the gate root-owned 0755', async () => {
    expect(await modeOf(join(prefix, 'usr/local/lib/archway-dispatcher'))).toBe('0700 0:0');
    expect(await modeOf(join(prefix, 'usr/local/lib/archway-dispatcher/archway-dispatcher.mjs'))).toBe('0700 0:0');
    expect(await modeOf(join(prefix, 'usr/local/lib/archway-dispatcher/dispatcher.json'))).toBe('0600 0:0');
    expect(await modeOf(join(prefix, 'etc/archway/secure-link.secret'))).toBe('0600 0:0');
    expect(await modeOf(join(prefix, 'etc/nginx/archway/secure-link-secret.conf'))).toBe('0600 0:0');
    expect(await modeOf(join(prefix, 'usr/local/sbin/archway-gate'))).toBe('0755 0:0');
    expect(await modeOf(join(prefix, 'var/lib/archway'))).toBe('0700 0:0');
  });

  it('installs the dispatcher with node named by absolute path, which its own check verifies', async () => {
    const dispatcher = join(prefix, 'usr/local/lib/archway-dispatcher/archway-dispatcher.mjs');
    const node = (await runOk(findProgram('readlink'), ['-f', findProgram('node')])).stdout.trim();
    expect((await readFile(dispatcher, 'utf8')).split('\n')[0]).toBe(`#!${node}`);
    // Run the file itself, as sudo does.
    const out = await run(dispatcher, ['check'], {
      env: { PATH: '/usr/bin:/bin', ARCHWAY_DISPATCHER_CONFIG: join(prefix, 'usr/local/lib/archway-dispatcher/dispatcher.json') },
    });
    expect(out.stderr).toMatch(new RegExp(`^ok {3}dispatcher interpreter: ${node} is owned by root`, 'm'));
    expect(out.stderr).toMatch(/^ok {3}link root: .* mode 0710/m);
    expect(out.stderr).toMatch(/^ok {3}download log: .*archway\/download\.log owner uid 0, mode 0640/m);
  });

  it('keeps LINK_ROOT traversable but not listable by nginx, and the downloads logs root-owned in a root-owned directory', async () => {
    const wwwData = (await runOk(findProgram('getent'), ['group', 'www-data'])).stdout.split(':')[2];
    const adm = (await runOk(findProgram('getent'), ['group', 'adm'])).stdout.split(':')[2];
    expect(await modeOf(join(prefix, 'srv/archway/links'))).toBe(`0710 0:${wwwData}`);
    expect(await modeOf(join(prefix, 'var/log/archway'))).toBe('0755 0:0');
    expect(await modeOf(join(prefix, 'var/log/archway/download.log'))).toBe(`0640 0:${adm}`);
    expect(await modeOf(join(prefix, 'var/log/archway/downloads-access.log'))).toBe(`0640 0:${adm}`);
    const config = JSON.parse(await readFile(join(prefix, 'usr/local/lib/archway-dispatcher/dispatcher.json'), 'utf8'));
    expect(config.downloadLog).toBe(join(prefix, 'var/log/archway/download.log'));
  });

  it('ships a logrotate config that recreates the logs root-owned and reloads nginx instead of reopening', async () => {
    const path = join(prefix, 'etc/logrotate.d/archway-downloads');
    expect(await modeOf(path)).toBe('0644 0:0');
    const text = await readFile(path, 'utf8');
    const stanza = text.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#'));
    expect(stanza[0]).toBe(`${join(prefix, 'var/log/archway/download.log')} ${join(prefix, 'var/log/archway/downloads-access.log')} {`);
    expect(stanza.map((l) => l.trim())).toEqual(
      expect.arrayContaining(['create 0640 root adm', 'delaycompress', 'postrotate', 'endscript', '}']),
    );
    expect(text).toContain('kill -HUP');
    expect(text).not.toMatch(/^[^#]*(USR1|reopen|rotate nginx)/m);
    expect(text).not.toMatch(/^[^#]*copytruncate/m);
  });

  it('writes a gate that only execs the installed dispatcher through sudo -n', async () => {
    const gate = await readFile(join(prefix, 'usr/local/sbin/archway-gate'), 'utf8');
    expect(gate).toContain(
      `exec sudo -n ${join(prefix, 'usr/local/lib/archway-dispatcher/archway-dispatcher.mjs')} "$SSH_ORIGINAL_COMMAND"`,
    );
    expect(gate).toContain(`  ${REMOTE_ACTIONS.join('|')})`);
    expect((await run('/bin/sh', ['-n', join(prefix, 'usr/local/sbin/archway-gate')])).code).toBe(0);
  });

  it('writes a sudoers rule that visudo accepts, one exact line per remote action and none for local ones', async () => {
    const path = join(prefix, 'etc/sudoers.d/archway');
    expect(await modeOf(path)).toBe('0440 0:0');
    expect((await run(findProgram('visudo'), ['-c', '-q', '-f', path])).code).toBe(0);
    const rules = (await readFile(path, 'utf8')).split('\n').filter((l) => l.startsWith(`${USER} `));
    const dispatcher = join(prefix, 'usr/local/lib/archway-dispatcher/archway-dispatcher.mjs');
    expect(rules).toEqual(REMOTE_ACTIONS.map((a) => `${USER} ALL=(root) NOPASSWD: ${dispatcher} ${a}`));
  });

  it('writes exactly one restricted, address-bound, forced-command key line, root-owned', async () => {
    const home = (await runOk(findProgram('getent'), ['passwd', USER])).stdout.split(':')[5] ?? '';
    const file = join(home, '.ssh', 'authorized_keys');
    expect(await modeOf(file)).toBe('0644 0:0');
    const key = (await readFile(publicKeyFile, 'utf8')).split(' ').slice(0, 2).join(' ');
    expect(await readFile(file, 'utf8')).toBe(
      `restrict,from="192.0.2.10",command="${join(prefix, 'usr/local/sbin/archway-gate')}" ${key}\n`,
    );
  });

  it('writes dispatcher settings the dispatcher itself accepts', async () => {
    const config = join(prefix, 'usr/local/lib/archway-dispatcher/dispatcher.json');
    const out = await run(process.execPath, [join(prefix, 'usr/local/lib/archway-dispatcher/archway-dispatcher.mjs'), 'ping'], {
      input: '{}',
      env: { PATH: process.env.PATH, ARCHWAY_DISPATCHER_CONFIG: config },
    });
    expect(out.code).toBe(0);
    expect(JSON.parse(out.stdout)).toMatchObject({ ok: true, result: { roots: { archive: true, link: true } } });
  });

  it('writes an nginx downloads vhost that nginx -t accepts', async () => {
    const conf = join(work, 'nginx-test.conf');
    await writeFile(
      conf,
      `pid ${join(work, 'nginx.pid')};\nerror_log ${join(work, 'error.log')};\nevents {}\nhttp {\n  include ${join(prefix, 'etc/nginx/conf.d/archway-http.conf')};\n  include ${join(prefix, 'etc/nginx/sites-enabled')}/*.conf;\n}\n`,
    );
    const out = await run(findProgram('nginx'), ['-t', '-p', work, '-c', conf]);
    expect(out.stderr).toContain('test is successful');
    expect((await lstat(join(prefix, 'etc/nginx/sites-enabled/archway-downloads.conf'))).isSymbolicLink()).toBe(true);
    expect(await readlink(join(prefix, 'etc/nginx/sites-enabled/archway-downloads.conf'))).toBe(
      '../sites-available/archway-downloads.conf',
    );
  });

  it('writes systemd units that systemd-analyze verifies', async () => {
    const dir = join(prefix, 'etc/systemd/system');
    const out = await run(findProgram('systemd-analyze'), [
      'verify',
      join(dir, 'archway-watch.service'),
      join(dir, 'archway-sweep.service'),
      join(dir, 'archway-sweep.timer'),
    ]);
    expect(out.stderr).toBe('');
    expect(out.code).toBe(0);
    expect(await readFile(join(dir, 'archway-watch.service'), 'utf8')).toMatch(/^Restart=always$/m);
    expect(await readFile(join(dir, 'archway-sweep.timer'), 'utf8')).toMatch(/^OnCalendar=minutely$/m);
  });

  it('refuses values that would be unsafe in sudoers or nginx, and installs nothing', async () => {
    const other = await mkdtemp(join(tmpdir(), 'archway-install-bad-'));
    try {
      const out = await run(join(REPO_ROOT, 'deploy', 'install-backup-host.sh'), [
        '--prefix',
        other,
        '--user',
        USER,
        '--portal-address',
        '1.2.3.4" ,command="/bin/sh',
        '--public-key',
        publicKeyFile,
        '--backup-root',
        '/srv/backups',
        '--download-base-url',
        'https://dl.example.net',
        '--portal-url',
        'https://p.example.net/',
        '--dispatcher',
        DISPATCHER_BUNDLE,
      ]);
      expect(out.code).toBe(1);
      expect(out.stderr).toContain('--portal-address');
      expect((await run('/bin/ls', ['-A', other])).stdout).toBe('');
    } finally {
      await rm(other, { recursive: true, force: true });
    }
  });
});

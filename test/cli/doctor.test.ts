// `archway doctor` against the real services, each with one fault injected: PostgreSQL, the SMTP sink, the backup host, its NGINX, a TLS server.
import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { migrateToLatest } from '../../src/db/migrator.js';
import { runDoctor } from '../../src/doctor/doctor.js';
import { MIGRATIONS_DIR } from '../../src/paths.js';
import { DISPATCHER_VERSION } from '../../src/protocol/index.js';
import { startBackupHost, type BackupHostFixture } from '../backup-host/fixture.js';
import { TEST_BUNDLE } from '../dispatcher/world.js';
import { runCli, type CliResult } from '../harness/cli.js';
import { createEmptyDatabase, createTestDatabase, type TestDatabase } from '../harness/database.js';
import { createSmtpSink, type SmtpSink } from '../harness/smtp-sink.js';
import { freeLoopbackPort, runOk } from '../harness/sshd.js';

// Each doctor run starts Node, and with a backup host eight dispatchers over SSH: slow on a busy machine.
const SLOW = { timeout: 120_000 };

const DB_PASSWORD = `db-${randomBytes(9).toString('hex')}`;
const SMTP_PASSWORD = `smtp-${randomBytes(9).toString('hex')}`;
const SECRETS = {
  ARCHWAY_SESSION_SECRET: randomBytes(24).toString('hex'),
  ARCHWAY_ENCRYPTION_KEY: randomBytes(32).toString('hex'),
  ARCHWAY_PASSWORD_PEPPER: randomBytes(24).toString('hex'),
};

let host: BackupHostFixture;
let sink: SmtpSink;
let database: TestDatabase;
let restrictedUrl: string;
let role: string;
let tmp: string;

async function asAdmin(databaseName: string, statements: string[]): Promise<void> {
  const url = new URL(inject('pgAdminUrl'));
  url.pathname = `/${databaseName}`;
  const client = new pg.Client({ connectionString: url.href });
  await client.connect();
  try {
    for (const statement of statements) await client.query(statement);
  } finally {
    await client.end();
  }
}

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'archway-doctor-'));
  [host, sink, database] = await Promise.all([
    startBackupHost(),
    createSmtpSink({ credentials: { user: 'portal', password: SMTP_PASSWORD } }),
    createTestDatabase(),
  ]);
  // The portal's role as the README sets it up: it logs in as a member of archway_portal, nothing more.
  role = `doctor_${randomBytes(4).toString('hex')}`;
  await asAdmin(database.name, [`create role ${role} login password '${DB_PASSWORD}'`, `grant archway_portal to ${role}`]);
  const url = new URL(database.url);
  url.username = role;
  url.password = DB_PASSWORD;
  restrictedUrl = url.href;
});

afterAll(async () => {
  await database?.drop();
  if (role) await asAdmin('postgres', [`drop role if exists ${role}`]);
  await Promise.all([host?.stop(), sink?.stop()]);
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

/** A healthy server-mode installation; each test overrides what it breaks. */
function healthyEnv(overrides: Record<string, string> = {}): Record<string, string> {
  return {
    ...SECRETS,
    ARCHWAY_DATABASE_URL: restrictedUrl,
    ARCHWAY_SMTP_URL: `smtp://portal:${SMTP_PASSWORD}@${sink.host}:${sink.port}`,
    ARCHWAY_BACKUP_HOST: host.sshd.host,
    ARCHWAY_BACKUP_HOST_PORT: String(host.sshd.port),
    ARCHWAY_BACKUP_HOST_USER: host.user.name,
    ARCHWAY_BACKUP_HOST_KEY_FILE: host.portalKey.privateKeyPath,
    ARCHWAY_BACKUP_HOST_FINGERPRINT: host.sshd.hostKeyFingerprint,
    ARCHWAY_BACKUP_HOST_DOWNLOADS_URL: host.downloadBaseUrl,
    ...overrides,
  };
}

/** The same without a backup host, for the faults elsewhere: one SSH round trip fewer per run on a shared machine. */
function withoutBackupHost(overrides: Record<string, string> = {}): Record<string, string> {
  const env = healthyEnv(overrides);
  for (const name of Object.keys(env)) if (name.startsWith('ARCHWAY_BACKUP_HOST')) delete env[name];
  return env;
}

function doctor(env: Record<string, string>, ...args: string[]): Promise<CliResult> {
  return runCli(['doctor', ...args], { env });
}

/** The output line of one check, found by its title. */
function line(result: CliResult, title: string): string {
  const found = result.stdout.split('\n').find((l) => l.slice(2).startsWith(`${title}:`));
  if (found === undefined) throw new Error(`no line for "${title}" in:\n${result.stdout}${result.stderr}`);
  return found;
}

function expectNoSecret(result: CliResult): void {
  for (const secret of [DB_PASSWORD, SMTP_PASSWORD, ...Object.values(SECRETS)]) {
    expect(result.stdout).not.toContain(secret);
    expect(result.stderr).not.toContain(secret);
  }
}

describe('archway doctor on a healthy installation', SLOW, () => {
  it('passes every check, one ✓ line each, exits 0 and sends no mail', async () => {
    const result = await doctor(healthyEnv());
    expect(result.stderr).toBe('');
    expect(result.stdout.split('\n').slice(0, -2)).toEqual([
      '✓ configuration valid: server mode',
      expect.stringMatching(/^✓ database reachable: PostgreSQL \d+/),
      '✓ database migrations current: every file in migrations/ is applied',
      `✓ database role restricted: role ${role} cannot create databases, roles, schemas or tables, nor rewrite the audit trail`,
      '✓ archives on configured backup hosts: every archive being built or ready is on a configured host',
      `✓ SMTP server accepts the configured TLS and login: 127.0.0.1:${sink.port} (STARTTLS when offered), login accepted`,
      expect.stringMatching(
        new RegExp(
          `^✓ backup host reachable with the pinned host key: ssh ${host.user.name}@127\\.0\\.0\\.1:${host.sshd.port} .*, ping answered in \\d+ ms$`,
        ),
      ),
      `✓ dispatcher version: ${DISPATCHER_VERSION}`,
      '✓ dispatcher roots present: backup, archive and link roots exist',
      '✓ dispatcher actions allowed through gate and sudo: all 10 actions reach the dispatcher',
      expect.stringMatching(/^✓ clock skew with the backup host: [+-]\d s \(at most 5 s\)$/),
      `✓ downloads vhost refuses a wrongly signed link: ${host.downloadBaseUrl} answered 403`,
      "– TLS certificate of the public URL: does not apply: ARCHWAY_PUBLIC_URL is http:// (TLS is for production, at the portal's NGINX)",
    ]);
    expect(result.stdout).toMatch(/\nAll is well: 12 passed, 1 do not apply\.\n$/);
    expect(result.code).toBe(0);
    expect(sink.messages).toHaveLength(0);
    expectNoSecret(result);
  });

  it('prints the same result as JSON with --json', async () => {
    const result = await doctor(healthyEnv(), '--json');
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout) as {
      ok: boolean;
      mode: string;
      checks: Array<{ id: string; status: string; fix: string | null }>;
    };
    expect(report.ok).toBe(true);
    expect(report.mode).toBe('server');
    expect(report.checks.map((c) => [c.id, c.status])).toEqual([
      ['config', 'pass'],
      ['database.reachable', 'pass'],
      ['database.migrations', 'pass'],
      ['database.role', 'pass'],
      ['database.archive-hosts', 'pass'],
      ['mail.smtp', 'pass'],
      ['backup-host.reachable', 'pass'],
      ['backup-host.version', 'pass'],
      ['backup-host.roots', 'pass'],
      ['backup-host.actions', 'pass'],
      ['backup-host.clock', 'pass'],
      ['backup-host.downloads', 'pass'],
      ['tls.certificate', 'not-applicable'],
    ]);
    expect(report.checks.every((c) => c.fix === null)).toBe(true);
  });

  it('sends one test message only when asked with --send-test', async () => {
    sink.clear();
    const result = await doctor(withoutBackupHost(), '--send-test', 'ops@example.net');
    expect(line(result, 'test message sent')).toBe(
      '✓ test message sent: the SMTP server accepted a message to ops@example.net; check that it arrived (and not as spam)',
    );
    expect(result.code).toBe(0);
    const [message] = await sink.waitForMessages(1);
    expect(message?.subject).toBe('Archway test message');
    expect(message?.to).toMatchObject({ text: 'ops@example.net' });
    expect(sink.messages).toHaveLength(1);
  });

  it('refuses --send-test without an address and unknown options', async () => {
    const bad = await doctor(withoutBackupHost(), '--send-test', 'not an address');
    expect(bad.code).toBe(64);
    expect(bad.stderr).toContain('--send-test needs an email address');
    const unknown = await doctor(withoutBackupHost(), '--fix-everything');
    expect(unknown.code).toBe(64);
    expect(unknown.stdout).toBe('');
  });
});

describe('archway doctor names each fault and its fix', SLOW, () => {
  it('an invalid configuration: names every bad setting and checks nothing else', async () => {
    const result = await doctor({
      ARCHWAY_DATABASE_URL: 'postgres://x@127.0.0.1/x',
      ARCHWAY_SESSION_SECRET: 'short',
      ARCHWAY_PASSWORD_PEPPER: SECRETS.ARCHWAY_PASSWORD_PEPPER,
      ARCHWAY_BACKUP_HOST_DOWNLOADS_URL: 'ftp://downloads.example.net',
    });
    expect(result.stdout).toBe(
      '✗ configuration valid: ARCHWAY_SESSION_SECRET is too short: use at least 32 random characters. ' +
        'ARCHWAY_ENCRYPTION_KEY (or ARCHWAY_ENCRYPTION_KEY_FILE) is missing. ' +
        'ARCHWAY_SMTP_URL (or ARCHWAY_SMTP_URL_FILE) is missing: the portal must be able to send email. ' +
        'ARCHWAY_BACKUP_HOST_DOWNLOADS_URL must start with https:// or http://. ' +
        'Fix: correct the settings named here (.env.example describes each); the other checks need a valid configuration\n' +
        'Not ready: 1 failed.\n',
    );
    expect(result.code).toBe(1);
    const json = JSON.parse((await doctor({ ARCHWAY_DATABASE_URL: 'postgres://x@127.0.0.1/x' }, '--json')).stdout) as {
      ok: boolean;
      mode: null;
      checks: unknown[];
    };
    expect(json).toMatchObject({ ok: false, mode: null, checks: [{ id: 'config', status: 'fail' }] });
  });

  it('an unreachable database: ✗ with the fix, the checks that need it not run', async () => {
    const port = await freeLoopbackPort();
    const result = await doctor(withoutBackupHost({ ARCHWAY_DATABASE_URL: `postgres://${role}:${DB_PASSWORD}@127.0.0.1:${port}/archway` }));
    expect(line(result, 'database reachable')).toBe(
      `✗ database reachable: connect ECONNREFUSED 127.0.0.1:${port}. ` +
        'Fix: start PostgreSQL or correct the host, port, database, user or password in ARCHWAY_DATABASE_URL',
    );
    expect(line(result, 'database migrations current')).toBe('– database migrations current: not checked: the database is not reachable');
    expect(line(result, 'database role restricted')).toBe('– database role restricted: not checked: the database is not reachable');
    expect(line(result, 'archives on configured backup hosts')).toBe(
      '– archives on configured backup hosts: not checked: the database is not reachable',
    );
    expect(result.stdout).toMatch(/\nNot ready: 2 passed, 1 failed, 3 not checked, 2 do not apply\.\n$/);
    expect(result.code).toBe(1);
    expectNoSecret(result);
  });

  it('a pending migration: names it and says to run archway migrate', async () => {
    const behind = await createEmptyDatabase();
    try {
      // Every migration but the newest, applied from a copy of migrations/.
      const files = (await readdir(MIGRATIONS_DIR)).filter((f) => f.endsWith('.sql')).sort();
      const newest = files.pop()!;
      const older = join(tmp, 'older-migrations');
      await mkdir(older);
      for (const f of files) await copyFile(join(MIGRATIONS_DIR, f), join(older, f));
      const db = new Kysely<unknown>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: behind.url, max: 1 }) }) });
      try {
        await migrateToLatest(db, older);
      } finally {
        await db.destroy();
      }
      const result = await doctor(withoutBackupHost({ ARCHWAY_DATABASE_URL: behind.url }), '--json');
      const report = JSON.parse(result.stdout) as {
        ok: boolean;
        checks: Array<{ id: string; status: string; detail: string; fix: string | null }>;
      };
      expect(report.ok).toBe(false);
      expect(report.checks.find((c) => c.id === 'database.migrations')).toEqual({
        id: 'database.migrations',
        title: 'database migrations current',
        status: 'fail',
        detail: `1 pending: ${newest.slice(0, -4)}`,
        fix: 'run "archway migrate"',
      });
      expect(report.checks.find((c) => c.id === 'database.archive-hosts')).toMatchObject({
        status: 'skipped',
        detail: 'not checked: the database migrations are not current',
      });
      expect(result.code).toBe(1);
    } finally {
      await behind.drop();
    }
  });

  it('a superuser role: names its powers and how to take them away', async () => {
    const result = await doctor(withoutBackupHost({ ARCHWAY_DATABASE_URL: database.ownerUrl }));
    expect(line(result, 'database role restricted')).toMatch(
      /^✗ database role restricted: role postgres is a superuser, may create databases \(CREATEDB\), may create roles \(CREATEROLE\), bypasses row-level security \(BYPASSRLS\), may create schemas in the database \(CREATE on the database, e\.g\. as its owner\), may create tables \(CREATE on schema public\), may rewrite or delete audit rows \(UPDATE or DELETE on audit_log, e\.g\. as the owner of the tables\)\. Fix: give the portal its own login role \(not postgres\), a member of archway_portal only, and name it in ARCHWAY_DATABASE_URL \(README, "Operations"\)$/,
    );
    expect(line(result, 'database migrations current')).toMatch(/^✓ /);
    expect(result.code).toBe(1);
  });

  it('a role that owns its database: may create schemas there', async () => {
    await asAdmin('postgres', [`alter database ${database.name} owner to ${role}`]);
    try {
      const result = await doctor(withoutBackupHost());
      expect(line(result, 'database role restricted')).toBe(
        `✗ database role restricted: role ${role} may create schemas in the database (CREATE on the database, e.g. as its owner), ` +
          'may create tables (CREATE on schema public). ' +
          `Fix: as a superuser run: ALTER ROLE ${role} NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS; ALTER DATABASE ${database.name} OWNER TO postgres; ` +
          `REVOKE CREATE ON DATABASE ${database.name} FROM ${role}, PUBLIC; REVOKE CREATE ON SCHEMA public FROM ${role}, PUBLIC; ` +
          `GRANT archway_portal TO ${role}; and let another role own the tables and run "archway migrate" (README, "Operations")`,
      );
      expect(result.code).toBe(1);
    } finally {
      await asAdmin('postgres', [`alter database ${database.name} owner to postgres`]);
    }
  });

  it('wrong SMTP credentials: the login is refused, and the password is never printed', async () => {
    const wrong = `wrong-${SMTP_PASSWORD}`;
    const result = await doctor(
      withoutBackupHost({ ARCHWAY_SMTP_URL: `smtp://portal:${wrong}@${sink.host}:${sink.port}` }),
      '--send-test',
      'ops@example.net',
    );
    expect(line(result, 'SMTP server accepts the configured TLS and login')).toMatch(
      new RegExp(
        `^✗ SMTP server accepts the configured TLS and login: 127\\.0\\.0\\.1:${sink.port} \\(STARTTLS when offered\\): EAUTH: .*535.*\\. Fix: correct the user name and password in ARCHWAY_SMTP_URL \\(as URL-encoded text\\)$`,
      ),
    );
    expect(line(result, 'test message sent')).toBe('– test message sent: not checked: the SMTP server did not accept the connection');
    expect(result.stdout).not.toContain(wrong);
    expectNoSecret(result);
    expect(result.code).toBe(1);
  });

  it('nothing listening on the SMTP port: says where a server should listen', async () => {
    const port = await freeLoopbackPort();
    const result = await doctor(withoutBackupHost({ ARCHWAY_SMTP_URL: `smtp://portal:${SMTP_PASSWORD}@127.0.0.1:${port}` }));
    expect(line(result, 'SMTP server accepts the configured TLS and login')).toMatch(
      new RegExp(
        `^✗ SMTP server accepts the configured TLS and login: 127\\.0\\.0\\.1:${port} \\(STARTTLS when offered\\): .*ECONNREFUSED.*\\. Fix: make sure an SMTP server listens at 127\\.0\\.0\\.1:${port} `,
      ),
    );
    expectNoSecret(result);
    expect(result.code).toBe(1);
  });

  it('TLS required but the server offers no STARTTLS: refuses to log in in the clear', async () => {
    const result = await doctor(
      withoutBackupHost({ ARCHWAY_SMTP_URL: `smtp://portal:${SMTP_PASSWORD}@${sink.host}:${sink.port}?requireTLS=true` }),
    );
    expect(line(result, 'SMTP server accepts the configured TLS and login')).toMatch(
      new RegExp(
        `^✗ SMTP server accepts the configured TLS and login: 127\\.0\\.0\\.1:${sink.port} \\(STARTTLS required\\): ETLS: .*\\. Fix: the server offers no usable TLS: `,
      ),
    );
    expectNoSecret(result);
    expect(result.code).toBe(1);
  });

  it('a backup host whose host key is not the pinned one: do not re-pin blindly', async () => {
    const result = await doctor(healthyEnv({ ARCHWAY_BACKUP_HOST_FINGERPRINT: host.portalKey.fingerprint }));
    expect(line(result, 'backup host reachable with the pinned host key')).toMatch(
      /^✗ backup host reachable with the pinned host key: BackupHostKeyMismatch: backup host key mismatch: pinned SHA256:\S+, presented SHA256:\S+; refusing to talk to it\. Fix: if the backup host was reinstalled, pin its new key .*do not re-pin, investigate$/,
    );
    for (const title of [
      'dispatcher version',
      'dispatcher roots present',
      'dispatcher actions allowed through gate and sudo',
      'clock skew with the backup host',
    ]) {
      expect(line(result, title)).toBe(`– ${title}: not checked: the backup host did not answer`);
    }
    // The downloads vhost is checked on its own: it does not need SSH.
    expect(line(result, 'downloads vhost refuses a wrongly signed link')).toMatch(/^✓ /);
    expect(result.code).toBe(1);
  });

  it('an unreachable backup host: points at address, firewall and authorized_keys', async () => {
    const port = await freeLoopbackPort();
    const result = await doctor(healthyEnv({ ARCHWAY_BACKUP_HOST_PORT: String(port) }));
    expect(line(result, 'backup host reachable with the pinned host key')).toMatch(
      /^✗ backup host reachable with the pinned host key: BackupHostUnreachable: .*\. Fix: check ARCHWAY_BACKUP_HOST and _PORT, the firewall, and that the portal's key is in the backup host's authorized_keys/,
    );
    expect(result.code).toBe(1);
  });

  it('a sudoers rule without one action: names the action that does not reach the dispatcher', async () => {
    const original = await readFile(host.sudoers.path, 'utf8');
    const without = original
      .split('\n')
      .filter((l) => !l.endsWith(' link.issue'))
      .join('\n');
    expect(without).not.toBe(original);
    // Renamed into place from a name with a dot (which sudo skips), so sudo never reads half a file.
    await writeFile(`${host.sudoers.path}.tmp`, without, { mode: 0o440 });
    await rename(`${host.sudoers.path}.tmp`, host.sudoers.path);
    try {
      const result = await doctor(healthyEnv());
      expect(line(result, 'dispatcher actions allowed through gate and sudo')).toBe(
        '✗ dispatcher actions allowed through gate and sudo: not reaching the dispatcher: link.issue. ' +
          'Fix: install the dispatcher, gate and sudoers rule from this release on the backup host (docs/DEPLOY-BACKUP-HOST.md)',
      );
      expect(line(result, 'dispatcher version')).toBe(`✓ dispatcher version: ${DISPATCHER_VERSION}`);
      expect(result.code).toBe(1);
    } finally {
      await writeFile(`${host.sudoers.path}.tmp`, original, { mode: 0o440 });
      await rename(`${host.sudoers.path}.tmp`, host.sudoers.path);
    }
  });

  it('a clock 30 seconds off: the skew and what to run', async () => {
    // Our clock runs 30 s behind, so the backup host's looks 30 s ahead.
    const { results } = await runDoctor({ env: healthyEnv(), now: () => Date.now() - 30_000 });
    expect(results.find((r) => r.id === 'backup-host.clock')).toEqual({
      id: 'backup-host.clock',
      title: 'clock skew with the backup host',
      status: 'fail',
      detail: expect.stringMatching(/^\+(29|30|31) s \(at most 5 s\): 60-second download links would expire early or live too long$/),
      fix: 'run NTP (systemd-timesyncd or chrony) on both hosts',
    });
  });

  it.each([
    ['ahead', 90],
    ['behind', -90],
  ])("the backup host's own clock 90 s %s: the skew and what to run", async (_label, offset) => {
    // The installed dispatcher is swapped, under sudo and sshd as before, for its test build with the clock moved.
    const original = await readFile(host.dispatcherPath);
    await writeFile(
      host.dispatcherPath,
      `#!/usr/bin/env node
process.env.ARCHWAY_DISPATCHER_CONFIG = ${JSON.stringify(host.dispatcherConfigPath)};
process.env.ARCHWAY_DISPATCHER_NOW_OFFSET = '${offset}';
await import(${JSON.stringify(pathToFileURL(TEST_BUNDLE).href)});
`,
    );
    try {
      const { results } = await runDoctor({ env: healthyEnv() });
      const sign = offset > 0 ? '\\+' : '-';
      expect(results.find((r) => r.id === 'backup-host.clock')).toEqual({
        id: 'backup-host.clock',
        title: 'clock skew with the backup host',
        status: 'fail',
        detail: expect.stringMatching(
          new RegExp(`^${sign}(89|90|91) s \\(at most 5 s\\): 60-second download links would expire early or live too long$`),
        ),
        fix: 'run NTP (systemd-timesyncd or chrony) on both hosts',
      });
      expect(results.find((r) => r.id === 'backup-host.version')).toMatchObject({ status: 'pass' });
    } finally {
      await writeFile(host.dispatcherPath, original);
    }
  });

  it('a downloads address where secure_link does not answer: 404 instead of 403', async () => {
    const result = await doctor(healthyEnv({ ARCHWAY_BACKUP_HOST_DOWNLOADS_URL: `${host.downloadBaseUrl}/elsewhere` }));
    expect(line(result, 'downloads vhost refuses a wrongly signed link')).toBe(
      `✗ downloads vhost refuses a wrongly signed link: ${host.downloadBaseUrl}/elsewhere answered 404, not 403. ` +
        'Fix: install the shipped downloads vhost (nginx/downloads.conf.in) with secure_link and check ARCHWAY_BACKUP_HOST_DOWNLOADS_URL',
    );
    expect(result.code).toBe(1);
  });

  it('a downloads NGINX that does not answer, or no downloads address at all', async () => {
    const port = await freeLoopbackPort();
    const down = await doctor(healthyEnv({ ARCHWAY_BACKUP_HOST_DOWNLOADS_URL: `http://127.0.0.1:${port}` }));
    expect(line(down, 'downloads vhost refuses a wrongly signed link')).toMatch(
      new RegExp(
        `^✗ downloads vhost refuses a wrongly signed link: http://127\\.0\\.0\\.1:${port} did not answer: .*ECONNREFUSED.*\\. Fix: make sure the downloads NGINX runs`,
      ),
    );
    const env = healthyEnv();
    delete env.ARCHWAY_BACKUP_HOST_DOWNLOADS_URL;
    const unset = await doctor(env);
    expect(line(unset, 'downloads vhost refuses a wrongly signed link')).toBe(
      '✗ downloads vhost refuses a wrongly signed link: no downloads URL is set (ARCHWAY_BACKUP_HOST_DOWNLOADS_URL, or downloadsUrl in the hosts file). ' +
        "Fix: set it to the downloads vhost's address, the downloadBaseUrl of the dispatcher's config",
    );
    expect(down.code).toBe(1);
    expect(unset.code).toBe(1);
  });
});

describe('archway doctor with a hosts file', SLOW, () => {
  it('checks every host under its own name, and one down does not hide the other', async () => {
    const port = await freeLoopbackPort();
    const entry = (name: string, sshPort: number) => ({
      name,
      address: host.sshd.host,
      port: sshPort,
      user: host.user.name,
      keyFile: host.portalKey.privateKeyPath,
      fingerprint: host.sshd.hostKeyFingerprint,
      downloadsUrl: host.downloadBaseUrl,
    });
    const file = join(tmp, 'hosts.json');
    // West is the same host behind a port nothing listens on.
    await writeFile(file, JSON.stringify({ hosts: [entry('east', host.sshd.port), entry('west', port)] }));
    const env = { ...withoutBackupHost(), ARCHWAY_BACKUP_HOSTS_FILE: file };

    const result = await doctor(env, '--json');
    expect(result.code).toBe(1);
    const report = JSON.parse(result.stdout) as { ok: boolean; checks: Array<{ id: string; title: string; status: string }> };
    expect(report.ok).toBe(false);
    const parts = ['reachable', 'version', 'roots', 'actions', 'clock', 'downloads'];
    expect(report.checks.filter((c) => c.id.startsWith('backup-host')).map((c) => [c.id, c.status])).toEqual([
      ...parts.map((part) => [`backup-host.east.${part}`, 'pass']),
      ['backup-host.west.reachable', 'fail'],
      ...['version', 'roots', 'actions', 'clock'].map((part) => [`backup-host.west.${part}`, 'skipped']),
      // The downloads vhost is checked without SSH, so west's (the same NGINX) still answers.
      ['backup-host.west.downloads', 'pass'],
    ]);
    expect(report.checks.find((c) => c.id === 'backup-host.west.reachable')?.title).toBe(
      'backup host reachable with the pinned host key (west)',
    );

    const text = await doctor(env);
    expect(line(text, 'backup host reachable with the pinned host key (east)')).toMatch(/^✓ /);
    expect(line(text, 'backup host reachable with the pinned host key (west)')).toMatch(/^✗ .*BackupHostUnreachable/);
    expectNoSecret(text);
  });

  it('names the hosts missing from the configuration that archives being built or ready are still on', async () => {
    const file = join(tmp, 'hosts-east.json');
    const east = {
      name: 'east',
      address: host.sshd.host,
      port: host.sshd.port,
      user: host.user.name,
      keyFile: host.portalKey.privateKeyPath,
      fingerprint: host.sshd.hostKeyFingerprint,
      downloadsUrl: host.downloadBaseUrl,
    };
    await writeFile(file, JSON.stringify({ hosts: [east] }));
    const env = { ...withoutBackupHost(), ARCHWAY_BACKUP_HOSTS_FILE: file };
    const db = database.handle.db;
    const user = await db
      .insertInto('users')
      .values({ email: 'stranded@example.net', role: 'customer', domain: 'stranded.example.net', plan: 'basic', backup_host: 'east' })
      .returning('id')
      .executeTakeFirstOrThrow();
    const archive = (backupHost: string, state: 'building' | 'ready' | 'downloaded' | 'expired') => ({
      user_id: user.id,
      customer: 'stranded.example.net',
      snapshot: 'daily.0',
      state,
      backup_host: backupHost,
      requested_ip: '198.51.100.20',
    });
    // West was renamed away with two archives in flight, "old" with one; finished ones do not count.
    const rows = await db
      .insertInto('archive_requests')
      .values([
        archive('east', 'ready'),
        archive('west', 'building'),
        archive('west', 'ready'),
        archive('old', 'ready'),
        archive('old', 'downloaded'),
        archive('gone', 'expired'),
      ])
      .returning('id')
      .execute();
    try {
      const result = await doctor(env);
      expect(line(result, 'archives on configured backup hosts')).toBe(
        '✗ archives on configured backup hosts: 3 archives being built or ready are on hosts the configuration does not name: ' +
          'old (1), west (2); their customers are told the service is unavailable. ' +
          'Fix: put these hosts back in the configuration under the same names (ARCHWAY_BACKUP_HOSTS_FILE, or ARCHWAY_BACKUP_HOST_NAME for one host) until their archives are downloaded or expire',
      );
      expect(result.code).toBe(1);
    } finally {
      await db
        .deleteFrom('archive_requests')
        .where(
          'id',
          'in',
          rows.map((r) => r.id),
        )
        .execute();
      await db.deleteFrom('users').where('id', '=', user.id).execute();
    }
  });
});

describe('archway doctor in first-look mode', SLOW, () => {
  it('says which checks do not apply and passes', async () => {
    const result = await doctor({});
    expect(result.stdout.split('\n')).toEqual([
      '✓ configuration valid: first-look mode (no ARCHWAY_DATABASE_URL): checks marked – do not apply',
      '– database reachable: does not apply: first look uses the embedded database, which `npm start` migrates itself',
      '– database migrations current: does not apply: first look uses the embedded database, which `npm start` migrates itself',
      '– database role restricted: does not apply: first look uses the embedded database, which `npm start` migrates itself',
      '– archives on configured backup hosts: does not apply: first look uses the embedded database, which `npm start` migrates itself',
      expect.stringMatching(
        /^– SMTP server accepts the configured TLS and login: does not apply: first look writes each message into \S+\/outbox instead of sending it$/,
      ),
      '– backup host: does not apply: none is configured (ARCHWAY_BACKUP_HOSTS_FILE or ARCHWAY_BACKUP_HOST), so customers cannot ask for archives',
      "– TLS certificate of the public URL: does not apply: ARCHWAY_PUBLIC_URL is http:// (TLS is for production, at the portal's NGINX)",
      'All is well: 1 passed, 7 do not apply.',
      '',
    ]);
    expect(result.code).toBe(0);
  });
});

describe("archway doctor checks the public URL's certificate", SLOW, () => {
  let dir: string;
  const servers: TlsServer[] = [];

  /** A CA and a leaf for 127.0.0.1 valid for `days`, made by openssl; the leaf served on loopback. */
  async function tlsServer(days: number): Promise<{ url: string; caFile: string }> {
    const name = `leaf-${days}`;
    const cnf = join(dir, `${name}.cnf`);
    await writeFile(cnf, 'subjectAltName=IP:127.0.0.1\n');
    await runOk('openssl', [
      'req',
      '-new',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-subj',
      '/CN=127.0.0.1',
      '-keyout',
      join(dir, `${name}.key`),
      '-out',
      join(dir, `${name}.csr`),
    ]);
    await runOk('openssl', [
      'x509',
      '-req',
      '-in',
      join(dir, `${name}.csr`),
      '-CA',
      join(dir, 'ca.crt'),
      '-CAkey',
      join(dir, 'ca.key'),
      '-CAcreateserial',
      '-days',
      String(days),
      '-extfile',
      cnf,
      '-out',
      join(dir, `${name}.crt`),
    ]);
    const server = createTlsServer(
      { key: await readFile(join(dir, `${name}.key`)), cert: await readFile(join(dir, `${name}.crt`)) },
      (socket) => socket.end(),
    );
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    const address = server.address();
    if (typeof address !== 'object' || address === null) throw new Error('no address');
    return { url: `https://127.0.0.1:${address.port}`, caFile: join(dir, 'ca.crt') };
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'archway-doctor-tls-'));
    await runOk('openssl', [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-subj',
      '/CN=Archway doctor test CA',
      '-days',
      '30',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
      '-keyout',
      join(dir, 'ca.key'),
      '-out',
      join(dir, 'ca.crt'),
    ]);
  });
  afterAll(async () => {
    for (const server of servers) await new Promise<void>((resolve) => server.close(() => resolve()));
    await rm(dir, { recursive: true, force: true });
  });

  it('passes a trusted certificate with weeks left', async () => {
    const { url, caFile } = await tlsServer(60);
    const result = await doctor({ ARCHWAY_PUBLIC_URL: url, NODE_EXTRA_CA_CERTS: caFile });
    expect(line(result, 'TLS certificate of the public URL')).toMatch(
      /^✓ TLS certificate of the public URL: 127\.0\.0\.1:\d+: trusted, valid until \d{4}-\d\d-\d\d \(59 days\)$/,
    );
    expect(result.code).toBe(0);
  });

  it('fails a certificate that expires in 3 days, and says to renew it', async () => {
    const { url, caFile } = await tlsServer(3);
    const result = await doctor({ ARCHWAY_PUBLIC_URL: url, NODE_EXTRA_CA_CERTS: caFile });
    expect(line(result, 'TLS certificate of the public URL')).toMatch(
      /^✗ TLS certificate of the public URL: 127\.0\.0\.1:\d+: expires \d{4}-\d\d-\d\d, in 2 days \(less than 14\)\. Fix: renew the certificate of the portal's NGINX/,
    );
    expect(result.code).toBe(1);
  });

  it('fails a certificate this machine does not trust', async () => {
    const { url } = await tlsServer(60);
    const result = await doctor({ ARCHWAY_PUBLIC_URL: url });
    expect(line(result, 'TLS certificate of the public URL')).toMatch(
      /^✗ TLS certificate of the public URL: 127\.0\.0\.1:\d+ presented a certificate this machine does not trust \((UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)\)\. Fix: install a certificate for this exact name/,
    );
    expect(result.code).toBe(1);
  });

  it('fails when nothing speaks TLS at the public URL', async () => {
    const port = await freeLoopbackPort();
    const result = await doctor({ ARCHWAY_PUBLIC_URL: `https://127.0.0.1:${port}` });
    expect(line(result, 'TLS certificate of the public URL')).toMatch(
      new RegExp(`^✗ TLS certificate of the public URL: 127\\.0\\.0\\.1:${port} did not complete a TLS handshake: connect ECONNREFUSED`),
    );
    expect(result.code).toBe(1);
  });
});

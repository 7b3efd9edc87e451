import { mkdtempSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';
import { TEST_SECRETS } from './harness/app.js';

const DB = 'postgres://archway:pw@db.internal:5432/archway';
const SMTP = 'smtp://mailer:pw@mail.internal:587';
const PRODUCTION = { NODE_ENV: 'production', ARCHWAY_MAIL_FROM: 'Archway <archway@example.net>' };

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
    expect(config).toMatchObject({
      mode: 'first-look',
      host: '127.0.0.1',
      port: 3000,
      databaseUrl: null,
      secrets: null,
      migrateOnStart: true,
    });
    expect(config.dataDir).toBe('/srv/archway/var');
    expect(Object.isFrozen(config)).toBe(true);
  });

  it('runs in server mode with a database URL and all three secrets', () => {
    const config = loadConfig({
      ARCHWAY_DATABASE_URL: DB,
      ARCHWAY_SMTP_URL: SMTP,
      ...TEST_SECRETS,
      ARCHWAY_PUBLIC_URL: 'https://portal.example.net/',
    });
    expect(config.mode).toBe('server');
    expect(config.publicUrl).toBe('https://portal.example.net');
    expect(config.secrets?.encryptionKey).toHaveLength(32);
    expect(config.migrateOnStart).toBe(false);
  });

  it('names a malformed database URL without repeating its password', () => {
    const problems = problemsOf({ ARCHWAY_DATABASE_URL: 'not a url with hunter2', ARCHWAY_SMTP_URL: SMTP, ...TEST_SECRETS });
    expect(problems).toEqual(['ARCHWAY_DATABASE_URL is not a valid URL.']);
    expect(problems.join()).not.toContain('hunter2');
  });

  it('refuses a database URL of another kind', () => {
    expect(problemsOf({ ARCHWAY_DATABASE_URL: 'mysql://x@y/z', ARCHWAY_SMTP_URL: SMTP, ...TEST_SECRETS })).toEqual([
      'ARCHWAY_DATABASE_URL must start with postgres:// or postgresql://.',
    ]);
  });

  it('reports every missing secret in server mode, each in its own line', () => {
    expect(problemsOf({ ARCHWAY_DATABASE_URL: DB, ARCHWAY_SMTP_URL: SMTP })).toEqual([
      'ARCHWAY_SESSION_SECRET (or ARCHWAY_SESSION_SECRET_FILE) is missing.',
      'ARCHWAY_PASSWORD_PEPPER (or ARCHWAY_PASSWORD_PEPPER_FILE) is missing.',
      'ARCHWAY_ENCRYPTION_KEY (or ARCHWAY_ENCRYPTION_KEY_FILE) is missing.',
    ]);
  });

  it('refuses secrets that are too short and keys that are not 32 bytes', () => {
    expect(
      problemsOf({
        ARCHWAY_DATABASE_URL: DB,
        ARCHWAY_SMTP_URL: SMTP,
        ARCHWAY_SESSION_SECRET: 'short',
        ARCHWAY_PASSWORD_PEPPER: 'x'.repeat(31),
        ARCHWAY_ENCRYPTION_KEY: 'correct horse battery staple',
      }),
    ).toEqual([
      'ARCHWAY_SESSION_SECRET is too short: use at least 32 random characters.',
      'ARCHWAY_PASSWORD_PEPPER is too short: use at least 32 random characters.',
      'ARCHWAY_ENCRYPTION_KEY must be 32 random bytes as 64 hex characters or 44 base64 characters.',
    ]);
  });

  it('reads secrets from *_FILE and trims the trailing newline', () => {
    const config = loadConfig({
      ARCHWAY_DATABASE_URL: DB,
      ARCHWAY_SMTP_URL: SMTP,
      ARCHWAY_SESSION_SECRET_FILE: secretFile(`${TEST_SECRETS.ARCHWAY_SESSION_SECRET}\n`),
      ARCHWAY_ENCRYPTION_KEY_FILE: secretFile(`${Buffer.alloc(32, 7).toString('base64')}\n`),
      ARCHWAY_PASSWORD_PEPPER: TEST_SECRETS.ARCHWAY_PASSWORD_PEPPER,
    });
    expect(config.secrets?.sessionSecret).toBe(TEST_SECRETS.ARCHWAY_SESSION_SECRET);
    expect(config.secrets?.encryptionKey.equals(Buffer.alloc(32, 7))).toBe(true);
  });

  it('refuses a secret given both directly and as a file', () => {
    expect(
      problemsOf({
        ...TEST_SECRETS,
        ARCHWAY_DATABASE_URL: DB,
        ARCHWAY_SMTP_URL: SMTP,
        ARCHWAY_SESSION_SECRET_FILE: secretFile('x'.repeat(40)),
      }),
    ).toEqual([
      'ARCHWAY_SESSION_SECRET and ARCHWAY_SESSION_SECRET_FILE are both set; set only one of them.',
      'ARCHWAY_SESSION_SECRET (or ARCHWAY_SESSION_SECRET_FILE) is missing.',
    ]);
  });

  it('says when a secret file cannot be read or is empty', () => {
    expect(
      problemsOf({
        ...TEST_SECRETS,
        ARCHWAY_DATABASE_URL: DB,
        ARCHWAY_SMTP_URL: SMTP,
        ARCHWAY_SESSION_SECRET: '',
        ARCHWAY_SESSION_SECRET_FILE: '/nonexistent/secret',
      }),
    ).toContain('ARCHWAY_SESSION_SECRET_FILE cannot be read (ENOENT).');
    expect(
      problemsOf({
        ...TEST_SECRETS,
        ARCHWAY_DATABASE_URL: DB,
        ARCHWAY_SMTP_URL: SMTP,
        ARCHWAY_PASSWORD_PEPPER: '',
        ARCHWAY_PASSWORD_PEPPER_FILE: secretFile('\n'),
      }),
    ).toContain('ARCHWAY_PASSWORD_PEPPER_FILE names an empty file.');
  });

  it('refuses first-look mode under NODE_ENV=production', () => {
    expect(problemsOf({ ...PRODUCTION })).toEqual([
      'NODE_ENV is production but ARCHWAY_DATABASE_URL is not set: first-look mode (embedded database, generated secrets) is not for production.',
      "ARCHWAY_PUBLIC_URL is missing: links in emails need the portal's https:// address.",
    ]);
  });

  it('requires an https public URL in production', () => {
    expect(problemsOf({ ...PRODUCTION, ARCHWAY_DATABASE_URL: DB, ARCHWAY_SMTP_URL: SMTP, ...TEST_SECRETS })).toEqual([
      "ARCHWAY_PUBLIC_URL is missing: links in emails need the portal's https:// address.",
    ]);
    expect(
      problemsOf({
        ...PRODUCTION,
        ARCHWAY_DATABASE_URL: DB,
        ARCHWAY_SMTP_URL: SMTP,
        ...TEST_SECRETS,
        ARCHWAY_PUBLIC_URL: 'http://portal.example.net',
      }),
    ).toEqual(['ARCHWAY_PUBLIC_URL must be https:// in production.']);
  });

  it('keeps first-look mode on loopback', () => {
    expect(problemsOf({ ARCHWAY_HOST: '0.0.0.0' })).toEqual([
      'ARCHWAY_HOST is "0.0.0.0": first-look mode listens on loopback only (127.0.0.1 or ::1).',
    ]);
  });

  it('names a bad port, log level and boolean together', () => {
    expect(problemsOf({ ARCHWAY_PORT: '70000', ARCHWAY_LOG_LEVEL: 'loud', ARCHWAY_MIGRATE_ON_START: 'maybe' })).toEqual([
      'ARCHWAY_PORT must be a whole number from 0 to 65535 (got "70000").',
      'ARCHWAY_LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent (got "loud").',
      'ARCHWAY_MIGRATE_ON_START must be true or false (got "maybe").',
    ]);
  });

  it('waits 24 hours after a download before the next archive, 2 minutes in first look, or what ARCHWAY_ARCHIVE_COOLDOWN says', () => {
    const server = { ARCHWAY_DATABASE_URL: DB, ARCHWAY_SMTP_URL: SMTP, ...TEST_SECRETS };
    expect(loadConfig(server, '/srv/archway').archives).toEqual({ cooldownMs: 24 * 3_600_000 });
    expect(loadConfig({}, '/srv/archway').archives).toEqual({ cooldownMs: 120_000 });
    for (const [value, ms] of [
      ['90m', 5_400_000],
      ['30s', 30_000],
      ['2d', 172_800_000],
      ['12H', 43_200_000],
      ['0', 0],
      ['30d', 2_592_000_000],
    ] as const) {
      expect(loadConfig({ ...server, ARCHWAY_ARCHIVE_COOLDOWN: value }, '/srv/archway').archives.cooldownMs).toBe(ms);
    }
    for (const value of ['24', '1w', '-1h', '1.5h', 'soon', '31d', '1h30m']) {
      expect(problemsOf({ ...server, ARCHWAY_ARCHIVE_COOLDOWN: value })).toEqual([
        `ARCHWAY_ARCHIVE_COOLDOWN must be a duration with its unit, like 24h, 90m, 30s or 2d, at most 30 days, or 0 for none (got "${value}").`,
      ]);
    }
  });

  it('requires an SMTP server in server mode and a sender address in production', () => {
    expect(
      problemsOf({ ARCHWAY_DATABASE_URL: DB, ...TEST_SECRETS, NODE_ENV: 'production', ARCHWAY_PUBLIC_URL: 'https://p.example.net' }),
    ).toEqual([
      'ARCHWAY_SMTP_URL (or ARCHWAY_SMTP_URL_FILE) is missing: the portal must be able to send email.',
      "ARCHWAY_MAIL_FROM is missing: set the sender address of Archway's email.",
    ]);
    expect(problemsOf({ ARCHWAY_SMTP_URL: 'http://mail', ARCHWAY_MAIL_FROM: 'nobody' })).toEqual([
      'ARCHWAY_SMTP_URL must look like smtp://user:password@host:587 or smtps://host:465.',
      'ARCHWAY_MAIL_FROM must be an address like archway@example.net or "Archway <archway@example.net>".',
    ]);
  });

  it('accepts trusted proxies as addresses or CIDR ranges and names a bad one', () => {
    expect(loadConfig({ ARCHWAY_TRUST_PROXY: '127.0.0.1, 10.0.0.0/8,::1' }).auth.trustProxy).toEqual(['127.0.0.1', '10.0.0.0/8', '::1']);
    expect(problemsOf({ ARCHWAY_TRUST_PROXY: '10.0.0.0/33,proxy.internal' })).toEqual([
      'ARCHWAY_TRUST_PROXY entry "10.0.0.0/33" is not an IP address or CIDR range.',
      'ARCHWAY_TRUST_PROXY entry "proxy.internal" is not an IP address or CIDR range.',
    ]);
  });

  it('keeps argon2 at or above the recommended minimum and HTTPS on in production', () => {
    expect(loadConfig({}).auth.argon2).toEqual({ memoryKiB: 19_456, timeCost: 2, parallelism: 1 });
    expect(loadConfig({}).auth.hashConcurrency).toBe(Math.max(1, availableParallelism() - 1));
    expect(problemsOf({ ARCHWAY_ARGON2_MEMORY_KIB: '4096', ARCHWAY_ARGON2_TIME_COST: '1' })).toEqual([
      'ARCHWAY_ARGON2_MEMORY_KIB must be a whole number from 19456 to 4194304 (got "4096").',
      'ARCHWAY_ARGON2_TIME_COST must be a whole number from 2 to 100 (got "1").',
    ]);
    expect(
      problemsOf({
        ...PRODUCTION,
        ARCHWAY_DATABASE_URL: DB,
        ARCHWAY_SMTP_URL: SMTP,
        ...TEST_SECRETS,
        ARCHWAY_PUBLIC_URL: 'https://p.example.net',
        ARCHWAY_REQUIRE_HTTPS: 'false',
      }),
    ).toEqual(['ARCHWAY_REQUIRE_HTTPS cannot be false in production.']);
  });

  it('reads the backup host as SSH settings with a pinned host key, or as a local dispatcher', () => {
    const fingerprint = `SHA256:${'A'.repeat(43)}`;
    expect(
      loadConfig({
        ARCHWAY_BACKUP_HOST: 'backup-1.internal',
        ARCHWAY_BACKUP_HOST_KEY_FILE: '/run/secrets/key',
        ARCHWAY_BACKUP_HOST_FINGERPRINT: fingerprint,
      }).backupHosts.hosts[0]?.settings,
    ).toEqual({
      host: 'backup-1.internal',
      port: 22,
      user: 'archway',
      privateKeyPath: '/run/secrets/key',
      hostKeyFingerprint: fingerprint,
    });
    expect(loadConfig({ ARCHWAY_BACKUP_HOST_LOCAL_CONFIG: '/srv/dispatcher.json' }).backupHosts.hosts[0]?.settings).toEqual({
      localDispatcherConfig: '/srv/dispatcher.json',
    });
    expect(loadConfig({}).backupHosts).toEqual({ hosts: [], defaultHost: null });
    expect(problemsOf({ ARCHWAY_BACKUP_HOST: 'bad host;rm', ARCHWAY_BACKUP_HOST_LOCAL_CONFIG: '/x' })).toEqual([
      'ARCHWAY_BACKUP_HOST and ARCHWAY_BACKUP_HOST_LOCAL_CONFIG are both set; set only one of them.',
    ]);
    expect(
      problemsOf({
        ARCHWAY_BACKUP_HOST: 'bad host;rm',
        ARCHWAY_BACKUP_HOST_KEY_FILE: '/k',
        ARCHWAY_BACKUP_HOST_FINGERPRINT: fingerprint,
        ARCHWAY_BACKUP_HOST_USER: 'Root!',
      }),
    ).toEqual([
      'ARCHWAY_BACKUP_HOST "bad host;rm" is not a host name or IP address.',
      'ARCHWAY_BACKUP_HOST_USER "Root!" is not a valid user name.',
    ]);
  });

  it('gives first look a backup host of its own only when none is configured, and checks its two settings', () => {
    expect(loadConfig({}, '/srv/archway').firstLookBackupHost).toEqual({ ownBackups: null, downloadPort: null });
    expect(loadConfig({ ARCHWAY_BACKUP_HOST_LOCAL_CONFIG: '/srv/dispatcher.json' }).firstLookBackupHost).toBeNull();
    expect(loadConfig({ ARCHWAY_DATABASE_URL: DB, ARCHWAY_SMTP_URL: SMTP, ...TEST_SECRETS }).firstLookBackupHost).toBeNull();
    const own = mkdtempSync(path.join(tmpdir(), 'archway-own-backups-'));
    expect(loadConfig({ ARCHWAY_FIRST_LOOK_BACKUPS: own, ARCHWAY_FIRST_LOOK_DOWNLOAD_PORT: '0' }).firstLookBackupHost).toEqual({
      ownBackups: own,
      downloadPort: 0,
    });
    expect(problemsOf({ ARCHWAY_FIRST_LOOK_BACKUPS: 'no-such-dir', ARCHWAY_FIRST_LOOK_DOWNLOAD_PORT: '70000' })).toEqual([
      'ARCHWAY_FIRST_LOOK_BACKUPS "no-such-dir" is not a directory.',
      'ARCHWAY_FIRST_LOOK_DOWNLOAD_PORT must be a whole number from 0 to 65535 (got "70000").',
    ]);
    expect(problemsOf({ ARCHWAY_FIRST_LOOK_BACKUPS: own, ARCHWAY_BACKUP_HOST_LOCAL_CONFIG: '/x' })).toEqual([
      'ARCHWAY_FIRST_LOOK_BACKUPS is only for first look without a backup host (no ARCHWAY_DATABASE_URL, no ARCHWAY_BACKUP_HOST*).',
    ]);
  });

  it('reads the database URL from ARCHWAY_DATABASE_URL_FILE, since it holds a password', () => {
    const config = loadConfig({ ARCHWAY_DATABASE_URL_FILE: secretFile(`${DB}\n`), ARCHWAY_SMTP_URL: SMTP, ...TEST_SECRETS });
    expect(config.mode).toBe('server');
    expect(config.databaseUrl).toBe(DB);
    expect(
      problemsOf({ ARCHWAY_DATABASE_URL: DB, ARCHWAY_DATABASE_URL_FILE: secretFile(DB), ARCHWAY_SMTP_URL: SMTP, ...TEST_SECRETS }),
    ).toEqual(['ARCHWAY_DATABASE_URL and ARCHWAY_DATABASE_URL_FILE are both set; set only one of them.']);
  });

  it('reads earlier password peppers and refuses a weak one', () => {
    const strong = 'p'.repeat(40);
    expect(loadConfig({ ARCHWAY_PASSWORD_PEPPERS_OLD: `${strong}, ${'q'.repeat(32)}` }).oldPasswordPeppers).toEqual([
      strong,
      'q'.repeat(32),
    ]);
    expect(loadConfig({}).oldPasswordPeppers).toEqual([]);
    expect(problemsOf({ ARCHWAY_PASSWORD_PEPPERS_OLD: `${strong},short` })).toEqual([
      'ARCHWAY_PASSWORD_PEPPERS_OLD entry 2 is too short: peppers have at least 32 characters.',
    ]);
  });
});

describe('the backup hosts file (ARCHWAY_BACKUP_HOSTS_FILE)', () => {
  const fingerprint = `SHA256:${'B'.repeat(43)}`;
  const dir = mkdtempSync(path.join(tmpdir(), 'archway-hosts-'));
  const file = (name: string, text: string) => {
    const at = path.join(dir, name);
    writeFileSync(at, text);
    return at;
  };

  it('reads named hosts from TOML or JSON; relative key files resolve next to the file; the passphrase comes from its file', () => {
    file('west.pass', 'a long passphrase\n');
    const toml = file(
      'hosts.toml',
      `[[hosts]]\nname = "east"\naddress = "10.0.0.5"\nkeyFile = "keys/east"\nfingerprint = "${fingerprint}"\ndownloadsUrl = "https://dl-east.example.net/"\n\n` +
        `[[hosts]]\nname = "west.example.net"\naddress = "backup-w.internal"\nport = 2222\nuser = "portal"\nkeyFile = "/etc/archway/west"\n` +
        `passphraseFile = "west.pass"\nfingerprint = "${fingerprint}"\n`,
    );
    const fromToml = loadConfig({ ARCHWAY_BACKUP_HOSTS_FILE: toml }).backupHosts;
    expect(fromToml).toEqual({
      defaultHost: null,
      hosts: [
        {
          name: 'east',
          settings: {
            host: '10.0.0.5',
            port: 22,
            user: 'archway',
            privateKeyPath: path.join(dir, 'keys/east'),
            hostKeyFingerprint: fingerprint,
          },
          downloadsUrl: 'https://dl-east.example.net',
        },
        {
          name: 'west.example.net',
          settings: {
            host: 'backup-w.internal',
            port: 2222,
            user: 'portal',
            privateKeyPath: '/etc/archway/west',
            hostKeyFingerprint: fingerprint,
            privateKeyPassphrase: 'a long passphrase',
          },
          downloadsUrl: null,
        },
      ],
    });
    const json = file(
      'hosts.json',
      JSON.stringify({
        hosts: [{ name: 'east', address: '10.0.0.5', keyFile: 'keys/east', fingerprint, downloadsUrl: 'https://dl-east.example.net/' }],
      }),
    );
    expect(loadConfig({ ARCHWAY_BACKUP_HOSTS_FILE: json }).backupHosts.hosts).toEqual([fromToml.hosts[0]]);
  });

  it('keeps the single-host variables working as a fleet of one that also serves customers without a host', () => {
    const single = loadConfig({
      ARCHWAY_BACKUP_HOST: 'backup-1.internal',
      ARCHWAY_BACKUP_HOST_KEY_FILE: '/run/secrets/key',
      ARCHWAY_BACKUP_HOST_FINGERPRINT: fingerprint,
      ARCHWAY_BACKUP_HOST_NAME: 'backup-1',
      ARCHWAY_BACKUP_HOST_DOWNLOADS_URL: 'https://dl.example.net',
    }).backupHosts;
    expect(single.defaultHost).toBe('backup-1');
    expect(single.hosts.map((h) => [h.name, h.downloadsUrl])).toEqual([['backup-1', 'https://dl.example.net']]);
    expect(loadConfig({ ARCHWAY_BACKUP_HOST_LOCAL_CONFIG: '/srv/d.json' }).backupHosts.defaultHost).toBe('default');
  });

  it('names every problem of a wrong file, each with its host, and refuses to start', () => {
    const bad = file(
      'bad.json',
      JSON.stringify({
        hosts: [
          { name: 'East', address: 'bad host;rm', port: 70000, keyFile: 'k', fingerprint: 'MD5:xx', colour: 'blue' },
          { name: 'west', address: '10.0.0.6', fingerprint, downloadsUrl: 'ftp://x' },
          { name: 'west', address: '10.0.0.7', keyFile: 'k', fingerprint, passphraseFile: 'missing.pass' },
          'not a table',
        ],
      }),
    );
    expect(problemsOf({ ARCHWAY_BACKUP_HOSTS_FILE: bad })).toEqual([
      'ARCHWAY_BACKUP_HOSTS_FILE (bad.json) host 1 has an unknown setting "colour".',
      'ARCHWAY_BACKUP_HOSTS_FILE (bad.json) host 1: name "East" must be lower-case letters, digits, dots and dashes (at most 63).',
      'ARCHWAY_BACKUP_HOSTS_FILE (bad.json) host "East": address "bad host;rm" is not a host name or IP address.',
      'ARCHWAY_BACKUP_HOSTS_FILE (bad.json) host "East": port must be a whole number from 1 to 65535.',
      'ARCHWAY_BACKUP_HOSTS_FILE (bad.json) host "East": fingerprint must look like SHA256:<43 base64 characters> (ssh-keygen -lf <host key>.pub prints it).',
      'ARCHWAY_BACKUP_HOSTS_FILE (bad.json) host 2 is missing "keyFile".',
      'ARCHWAY_BACKUP_HOSTS_FILE (bad.json) host "west": downloadsUrl "ftp://x" is not an http(s) URL.',
      'ARCHWAY_BACKUP_HOSTS_FILE (bad.json) host 3: the name "west" is used twice.',
      'ARCHWAY_BACKUP_HOSTS_FILE (bad.json) host "west": passphraseFile cannot be read (ENOENT).',
      'ARCHWAY_BACKUP_HOSTS_FILE (bad.json) host 4 is not a table of settings.',
    ]);
    expect(problemsOf({ ARCHWAY_BACKUP_HOSTS_FILE: file('broken.toml', '[[hosts]\nname = "x"') })).toEqual([
      expect.stringMatching(/^ARCHWAY_BACKUP_HOSTS_FILE \(broken\.toml\) is not valid TOML: /),
    ]);
    expect(problemsOf({ ARCHWAY_BACKUP_HOSTS_FILE: file('empty.json', '{"hosts": []}') })).toEqual([
      'ARCHWAY_BACKUP_HOSTS_FILE (empty.json) must list at least one host under "hosts" (JSON) or [[hosts]] (TOML).',
    ]);
    expect(problemsOf({ ARCHWAY_BACKUP_HOSTS_FILE: path.join(dir, 'absent.json') })).toEqual([
      `ARCHWAY_BACKUP_HOSTS_FILE "${path.join(dir, 'absent.json')}" cannot be read (ENOENT).`,
    ]);
    expect(problemsOf({ ARCHWAY_BACKUP_HOSTS_FILE: bad, ARCHWAY_BACKUP_HOST: 'b.internal' })).toEqual([
      'ARCHWAY_BACKUP_HOSTS_FILE is set together with ARCHWAY_BACKUP_HOST(_LOCAL_CONFIG); set only one of them.',
    ]);
    const good = file('good.json', JSON.stringify({ hosts: [{ name: 'east', address: '10.0.0.5', keyFile: 'k', fingerprint }] }));
    expect(problemsOf({ ARCHWAY_BACKUP_HOSTS_FILE: good, ARCHWAY_BACKUP_HOST_DOWNLOADS_URL: 'https://dl.example.net' })).toEqual([
      'ARCHWAY_BACKUP_HOST_DOWNLOADS_URL is set together with ARCHWAY_BACKUP_HOSTS_FILE; give each host its downloadsUrl in the file.',
    ]);
    expect(problemsOf({ ARCHWAY_BACKUP_HOST_NAME: 'Not OK', ARCHWAY_BACKUP_HOST_LOCAL_CONFIG: '/x' })).toEqual([
      'ARCHWAY_BACKUP_HOST_NAME "Not OK" must be lower-case letters, digits, dots and dashes (at most 63).',
    ]);
  });
});

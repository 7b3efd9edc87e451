// Reads the environment once into a validated, frozen Config, naming every bad variable at once.
import { readFileSync, statSync } from 'node:fs';
import { isIP } from 'node:net';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import type { LocalBackupHostSettings, SshBackupHostSettings } from './backup-host/factory.js';
import { isBackupHostName, readHostsFile, SSH_FINGERPRINT, SSH_USER, type NamedBackupHost } from './backup-host/hosts-file.js';

export type Mode = 'first-look' | 'server';

export interface Secrets {
  /** Signs the session cookie (@fastify/session wants at least 32 characters). */
  sessionSecret: string;
  /** 32-byte key for AES-256-GCM: TOTP secrets and short-lived encrypted cookies. */
  encryptionKey: Buffer;
  /** Server-side pepper mixed into every password hash with HMAC-SHA-256. */
  passwordPepper: string;
}

export interface MailConfig {
  /** smtp:// or smtps:// URL with optional user:password; null = first-look outbox files. */
  smtpUrl: string | null;
  /** smtp:// refuses to send without STARTTLS unless the URL says ?requireTLS=false; on in production. */
  requireTlsByDefault: boolean;
  from: string;
  /** First-look mode writes each message as an .eml file here instead of sending it. */
  outboxDir: string;
}

/** Brute-force regulation of the sign-in form (numbers and reasoning in docs/SECURITY.md). */
export interface RegulationConfig {
  /** Failed sign-ins from one IP within ipWindowMinutes that block the IP. */
  ipMaxFailures: number;
  ipWindowMinutes: number;
  /** First IP block; each further block within escalationHours doubles it, up to ipBlockMaxMinutes. */
  ipBlockMinutes: number;
  ipBlockMaxMinutes: number;
  /** Failed sign-ins for one account within userWindowMinutes that pause sign-ins to it. */
  userMaxFailures: number;
  userWindowMinutes: number;
  /** First pause of an account; doubles with each further pause, up to userBlockMaxMinutes (kept short on purpose). */
  userBlockSeconds: number;
  userBlockMaxMinutes: number;
  /** How long earlier blocks of the same IP or account count towards the next one's length. */
  escalationHours: number;
}

export interface AuthConfig {
  /** argon2id cost; defaults meet OWASP's first recommendation (19 MiB, 2 passes, 1 lane). */
  argon2: { memoryKiB: number; timeCost: number; parallelism: number };
  /** How many password hashes may run at once; more wait in line instead of starving the event loop. */
  hashConcurrency: number;
  sessionIdleMinutes: number;
  sessionAbsoluteHours: number;
  /** Sign-in IP addresses are purged after this many days. */
  ipRetentionDays: number;
  /** Proxies whose X-Forwarded-For/-Proto are believed (IPs or CIDRs); empty = none. */
  trustProxy: string[];
  /** Refuse plain HTTP (behind the TLS proxy) and mark cookies Secure. */
  requireHttps: boolean;
  /** Customers, too, must enrol in two-factor sign-in before using the portal (operators always must). */
  twoFactorForCustomers: boolean;
  regulation: RegulationConfig;
  /** "Forgot password" requests one client address (IPv6: its /64) may make per hour, whatever address it asks for. */
  resetRequestsPerIpPerHour: number;
}

/** Where /metrics is served (docs/METRICS.md); with neither a listen address nor a token it is not served. */
export interface MetricsConfig {
  /** Its own listener, apart from the portal's; null = none. */
  listen: { host: string; port: number } | null;
  /** A bearer token Prometheus must send; on the main listener /metrics exists only with one. */
  token: string | null;
}

export interface ArchivesConfig {
  /** After a completed download, how long before the customer may ask for the next archive (0: no wait). */
  cooldownMs: number;
}

/** How the portal reaches the dispatcher: SSH to the backup host, or a local dispatcher for a first look. */
export type BackupHostConfig = SshBackupHostSettings | LocalBackupHostSettings;

export interface BackupFleetConfig {
  hosts: NamedBackupHost<BackupHostConfig>[];
  /** The host of customers whose backup_host is empty: the single host's name, or null with a hosts file. */
  defaultHost: string | null;
}

/** The name of the one host the single-host variables (and first look) configure. */
export const DEFAULT_BACKUP_HOST = 'default';
const NO_BACKUP_HOSTS: BackupFleetConfig = { hosts: [], defaultHost: null };

/** One host as the whole fleet, serving customers with no host of their own too. */
export function fleetOfOne(settings: BackupHostConfig, downloadsUrl: string | null = null, name = DEFAULT_BACKUP_HOST): BackupFleetConfig {
  return { hosts: [{ name, settings, downloadsUrl }], defaultHost: name };
}

export interface Config {
  mode: Mode;
  production: boolean;
  host: string;
  port: number;
  publicUrl: string;
  /** Where first-look mode keeps its database, secrets and outbox; never used for secrets in server mode. */
  dataDir: string;
  databaseUrl: string | null;
  migrateOnStart: boolean;
  logLevel: string;
  /** Null only in first-look mode before the generated secrets are loaded (see first-look/secrets.ts). */
  secrets: Secrets | null;
  /** Earlier encryption keys, only to read what `archway keys rotate` has not re-encrypted yet. */
  oldEncryptionKeys: Buffer[];
  /** Earlier password peppers: a password that still matches one is re-hashed with the current pepper. */
  oldPasswordPeppers: string[];
  mail: MailConfig;
  auth: AuthConfig;
  /** The named backup hosts; none configured means archive requests are unavailable. */
  backupHosts: BackupFleetConfig;
  archives: ArchivesConfig;
  metrics: MetricsConfig;
  /** First look's own backup host (src/first-look/); null in server mode or when a backup host is configured. */
  firstLookBackupHost: FirstLookBackupHostConfig | null;
}

export interface FirstLookBackupHostConfig {
  /** A backup tree of the newcomer's own (one folder per installation domain) instead of the generated demo backups. */
  ownBackups: string | null;
  /** The download server's port; null = the portal's port + 1, or any free port when that one is taken. */
  downloadPort: number | null;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Archway cannot start; fix the configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
const MIN_SECRET_LENGTH = 32;

type Env = Record<string, string | undefined>;

/** Collects problems instead of throwing at the first, so one start-up shows them all. */
class Reader {
  readonly problems: string[] = [];
  constructor(private readonly env: Env) {}

  plain(name: string): string | undefined {
    const value = this.env[name];
    return value === undefined || value.trim() === '' ? undefined : value.trim();
  }

  /** A secret may come from NAME or from the file named by NAME_FILE, never both. */
  secret(name: string): string | undefined {
    const direct = this.plain(name);
    const file = this.plain(`${name}_FILE`);
    if (direct !== undefined && file !== undefined) {
      this.problems.push(`${name} and ${name}_FILE are both set; set only one of them.`);
      return undefined;
    }
    if (file === undefined) return direct;
    try {
      const value = readFileSync(file, 'utf8').trim();
      if (value === '') this.problems.push(`${name}_FILE names an empty file.`);
      return value === '' ? undefined : value;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'unknown error';
      this.problems.push(`${name}_FILE cannot be read (${code}).`);
      return undefined;
    }
  }

  int(name: string, fallback: number, min: number, max: number): number {
    const raw = this.plain(name);
    if (raw === undefined) return fallback;
    if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
      this.problems.push(`${name} must be a whole number from ${min} to ${max} (got "${raw}").`);
      return fallback;
    }
    return Number(raw);
  }

  bool(name: string, fallback: boolean): boolean {
    const raw = this.plain(name);
    if (raw === undefined) return fallback;
    if (/^(1|true|yes|on)$/i.test(raw)) return true;
    if (/^(0|false|no|off)$/i.test(raw)) return false;
    this.problems.push(`${name} must be true or false (got "${raw}").`);
    return fallback;
  }

  /** A duration such as 24h, 90m, 30s, 2d or 0, in milliseconds, from 0 to `maxMs`. */
  duration(name: string, fallbackMs: number, maxMs: number): number {
    const raw = this.plain(name);
    if (raw === undefined) return fallbackMs;
    const match = /^(\d{1,9})\s*(s|m|h|d)?$/i.exec(raw);
    const unitMs = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[(match?.[2] ?? (match?.[1] === '0' ? 's' : '')).toLowerCase()];
    const ms = match === null || unitMs === undefined ? NaN : Number(match[1]) * unitMs;
    if (!(ms <= maxMs)) {
      this.problems.push(
        `${name} must be a duration with its unit, like 24h, 90m, 30s or 2d, at most ${maxMs / 86_400_000} days, or 0 for none (got "${raw}").`,
      );
      return fallbackMs;
    }
    return ms;
  }

  /** A URL setting; with `secret`, it may also come from NAME_FILE (a database URL holds a password). */
  url(name: string, protocols: string[], options: { secret?: boolean } = {}): URL | undefined {
    const raw = options.secret ? this.secret(name) : this.plain(name);
    if (raw === undefined) return undefined;
    let parsed: URL;
    try {
      parsed = new URL(raw);
    } catch {
      // The value itself may hold a password, so it is not repeated in the message.
      this.problems.push(`${name} is not a valid URL.`);
      return undefined;
    }
    if (!protocols.includes(parsed.protocol)) {
      this.problems.push(`${name} must start with ${protocols.map((p) => `${p}//`).join(' or ')}.`);
      return undefined;
    }
    return parsed;
  }
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'));
}

function readSecrets(reader: Reader, required: boolean): Secrets | null {
  const sessionSecret = reader.secret('ARCHWAY_SESSION_SECRET');
  const encryptionKeyText = reader.secret('ARCHWAY_ENCRYPTION_KEY');
  const passwordPepper = reader.secret('ARCHWAY_PASSWORD_PEPPER');
  const given = [sessionSecret, encryptionKeyText, passwordPepper].filter((v) => v !== undefined).length;
  if (!required && given === 0) return null;

  for (const [name, value] of [
    ['ARCHWAY_SESSION_SECRET', sessionSecret],
    ['ARCHWAY_PASSWORD_PEPPER', passwordPepper],
  ] as const) {
    if (value === undefined) reader.problems.push(`${name} (or ${name}_FILE) is missing.`);
    else if (value.length < MIN_SECRET_LENGTH) {
      reader.problems.push(`${name} is too short: use at least ${MIN_SECRET_LENGTH} random characters.`);
    }
  }
  const encryptionKey = parseKey(encryptionKeyText);
  if (encryptionKeyText === undefined) {
    reader.problems.push('ARCHWAY_ENCRYPTION_KEY (or ARCHWAY_ENCRYPTION_KEY_FILE) is missing.');
  } else if (encryptionKey === null) {
    reader.problems.push('ARCHWAY_ENCRYPTION_KEY must be 32 random bytes as 64 hex characters or 44 base64 characters.');
  }
  if (sessionSecret === undefined || passwordPepper === undefined || encryptionKey === null) return null;
  return { sessionSecret, encryptionKey, passwordPepper };
}

/** ARCHWAY_METRICS_LISTEN (host:port, [v6]:port) and ARCHWAY_METRICS_TOKEN(_FILE). */
function readMetrics(reader: Reader, loopbackOnly: boolean): MetricsConfig {
  const token = reader.secret('ARCHWAY_METRICS_TOKEN') ?? null;
  if (token !== null && token.length < MIN_SECRET_LENGTH) {
    reader.problems.push(`ARCHWAY_METRICS_TOKEN is too short: use at least ${MIN_SECRET_LENGTH} random characters.`);
  } else if (token !== null && !/^[\x21-\x7e]+$/.test(token)) {
    // Prometheus sends it as "Authorization: Bearer <token>": one word of printable ASCII.
    reader.problems.push('ARCHWAY_METRICS_TOKEN must be printable ASCII without spaces (e.g. `openssl rand -hex 32`).');
  }
  const raw = reader.plain('ARCHWAY_METRICS_LISTEN');
  if (raw === undefined) return { listen: null, token };
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s]+)):(\d{1,5})$/.exec(raw);
  const host = match?.[1] ?? match?.[2];
  const port = Number(match?.[3]);
  if (host === undefined || (isIP(host) === 0 && host !== 'localhost') || !(port <= 65535)) {
    reader.problems.push(`ARCHWAY_METRICS_LISTEN must be an IP address and port like 127.0.0.1:9464 or [::1]:9464 (got "${raw}").`);
    return { listen: null, token };
  }
  if (loopbackOnly && !isLoopback(host)) {
    reader.problems.push(`ARCHWAY_METRICS_LISTEN is "${raw}": first-look mode listens on loopback only (127.0.0.1 or ::1).`);
  }
  return { listen: { host, port }, token };
}

/** First look's own backup host: only with neither a database server nor a backup host configured. */
function readFirstLookBackupHost(reader: Reader, applies: boolean, cwd: string): FirstLookBackupHostConfig | null {
  const own = reader.plain('ARCHWAY_FIRST_LOOK_BACKUPS');
  const portText = reader.plain('ARCHWAY_FIRST_LOOK_DOWNLOAD_PORT');
  if (!applies) {
    for (const [name, value] of [
      ['ARCHWAY_FIRST_LOOK_BACKUPS', own],
      ['ARCHWAY_FIRST_LOOK_DOWNLOAD_PORT', portText],
    ] as const) {
      if (value !== undefined)
        reader.problems.push(`${name} is only for first look without a backup host (no ARCHWAY_DATABASE_URL, no ARCHWAY_BACKUP_HOST*).`);
    }
    return null;
  }
  let ownBackups: string | null = null;
  if (own !== undefined) {
    ownBackups = path.resolve(cwd, own);
    let isDirectory = false;
    try {
      isDirectory = statSync(ownBackups).isDirectory();
    } catch {
      // reported below
    }
    if (!isDirectory) reader.problems.push(`ARCHWAY_FIRST_LOOK_BACKUPS "${own}" is not a directory.`);
  }
  const downloadPort = portText === undefined ? null : reader.int('ARCHWAY_FIRST_LOOK_DOWNLOAD_PORT', 0, 0, 65535);
  return { ownBackups, downloadPort };
}

/** Accepts 32 bytes as hex or base64; anything else (a passphrase, a short key) is refused. */
export function parseKey(text: string | undefined): Buffer | null {
  if (text === undefined) return null;
  if (/^[0-9a-fA-F]{64}$/.test(text)) return Buffer.from(text, 'hex');
  if (/^[A-Za-z0-9+/_-]{43}=?$/.test(text)) {
    const key = Buffer.from(text.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
    return key.length === 32 ? key : null;
  }
  return null;
}

const HOST_NAME = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/**
 * The fleet: the hosts file, or the single-host variables as a fleet of one named by
 * ARCHWAY_BACKUP_HOST_NAME ("default"), which also serves customers with no backup host of their own.
 */
function readBackupHosts(reader: Reader): BackupFleetConfig {
  const file = reader.plain('ARCHWAY_BACKUP_HOSTS_FILE');
  const single = reader.plain('ARCHWAY_BACKUP_HOST');
  const local = reader.plain('ARCHWAY_BACKUP_HOST_LOCAL_CONFIG');
  const name = reader.plain('ARCHWAY_BACKUP_HOST_NAME') ?? DEFAULT_BACKUP_HOST;
  if (!isBackupHostName(name))
    reader.problems.push(`ARCHWAY_BACKUP_HOST_NAME "${name}" must be lower-case letters, digits, dots and dashes (at most 63).`);
  const downloadsUrl = reader.url('ARCHWAY_BACKUP_HOST_DOWNLOADS_URL', ['https:', 'http:']);
  const downloads = downloadsUrl === undefined ? null : downloadsUrl.href.replace(/\/$/, '');
  if (file !== undefined) {
    if (single !== undefined || local !== undefined) {
      reader.problems.push('ARCHWAY_BACKUP_HOSTS_FILE is set together with ARCHWAY_BACKUP_HOST(_LOCAL_CONFIG); set only one of them.');
      return NO_BACKUP_HOSTS;
    }
    if (downloads !== null)
      reader.problems.push(
        'ARCHWAY_BACKUP_HOST_DOWNLOADS_URL is set together with ARCHWAY_BACKUP_HOSTS_FILE; give each host its downloadsUrl in the file.',
      );
    const { hosts, problems } = readHostsFile(file);
    reader.problems.push(...problems);
    return { hosts, defaultHost: null };
  }
  if (single !== undefined && local !== undefined) {
    reader.problems.push('ARCHWAY_BACKUP_HOST and ARCHWAY_BACKUP_HOST_LOCAL_CONFIG are both set; set only one of them.');
    return NO_BACKUP_HOSTS;
  }
  if (local !== undefined) return fleetOfOne({ localDispatcherConfig: local }, downloads, name);
  if (single === undefined) return NO_BACKUP_HOSTS;

  if (isIP(single) === 0 && !HOST_NAME.test(single))
    reader.problems.push(`ARCHWAY_BACKUP_HOST "${single}" is not a host name or IP address.`);
  const port = reader.int('ARCHWAY_BACKUP_HOST_PORT', 22, 1, 65535);
  const user = reader.plain('ARCHWAY_BACKUP_HOST_USER') ?? 'archway';
  if (!SSH_USER.test(user)) reader.problems.push(`ARCHWAY_BACKUP_HOST_USER "${user}" is not a valid user name.`);
  const privateKeyPath = reader.plain('ARCHWAY_BACKUP_HOST_KEY_FILE');
  if (privateKeyPath === undefined) reader.problems.push('ARCHWAY_BACKUP_HOST_KEY_FILE is missing: the portal needs its SSH private key.');
  const fingerprint = reader.plain('ARCHWAY_BACKUP_HOST_FINGERPRINT');
  if (fingerprint === undefined) {
    reader.problems.push('ARCHWAY_BACKUP_HOST_FINGERPRINT is missing: pin the backup host key (ssh-keygen -lf <host key>.pub prints it).');
  } else if (!SSH_FINGERPRINT.test(fingerprint)) {
    reader.problems.push('ARCHWAY_BACKUP_HOST_FINGERPRINT must look like SHA256:<43 base64 characters>.');
  }
  const passphrase = reader.secret('ARCHWAY_BACKUP_HOST_KEY_PASSPHRASE');
  if (privateKeyPath === undefined || fingerprint === undefined) return NO_BACKUP_HOSTS;
  const settings = {
    host: single,
    port,
    user,
    privateKeyPath,
    hostKeyFingerprint: fingerprint,
    ...(passphrase !== undefined ? { privateKeyPassphrase: passphrase } : {}),
  };
  return fleetOfOne(settings, downloads, name);
}

/** ARCHWAY_ENCRYPTION_KEYS_OLD(_FILE): comma- or newline-separated keys, each in the form of ARCHWAY_ENCRYPTION_KEY. */
function readOldKeys(reader: Reader): Buffer[] {
  const text = reader.secret('ARCHWAY_ENCRYPTION_KEYS_OLD');
  if (text === undefined) return [];
  const keys: Buffer[] = [];
  text
    .split(/[,\n]/)
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '')
    .forEach((entry, index) => {
      const key = parseKey(entry);
      if (key === null)
        reader.problems.push(`ARCHWAY_ENCRYPTION_KEYS_OLD entry ${index + 1} is not 32 bytes as 64 hex or 44 base64 characters.`);
      else keys.push(key);
    });
  return keys;
}

/** ARCHWAY_PASSWORD_PEPPERS_OLD(_FILE): comma- or newline-separated earlier peppers, each as strong as the current one. */
function readOldPeppers(reader: Reader): string[] {
  const text = reader.secret('ARCHWAY_PASSWORD_PEPPERS_OLD');
  if (text === undefined) return [];
  const peppers = text
    .split(/[,\n]/)
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '');
  peppers.forEach((pepper, index) => {
    if (pepper.length < MIN_SECRET_LENGTH)
      reader.problems.push(
        `ARCHWAY_PASSWORD_PEPPERS_OLD entry ${index + 1} is too short: peppers have at least ${MIN_SECRET_LENGTH} characters.`,
      );
  });
  return peppers;
}

export function loadConfig(env: Env = process.env, cwd: string = process.cwd()): Config {
  const reader = new Reader(env);
  const production = env.NODE_ENV === 'production';
  const database = reader.url('ARCHWAY_DATABASE_URL', ['postgres:', 'postgresql:'], { secret: true });
  const databaseGiven = reader.plain('ARCHWAY_DATABASE_URL') !== undefined || reader.plain('ARCHWAY_DATABASE_URL_FILE') !== undefined;
  const mode: Mode = databaseGiven ? 'server' : 'first-look';

  if (mode === 'first-look' && production) {
    reader.problems.push(
      'NODE_ENV is production but ARCHWAY_DATABASE_URL is not set: first-look mode (embedded database, generated secrets) is not for production.',
    );
  }

  const host = reader.plain('ARCHWAY_HOST') ?? '127.0.0.1';
  if (mode === 'first-look' && !isLoopback(host)) {
    reader.problems.push(`ARCHWAY_HOST is "${host}": first-look mode listens on loopback only (127.0.0.1 or ::1).`);
  }
  const port = reader.int('ARCHWAY_PORT', 3000, 0, 65535);

  const publicUrl = reader.url('ARCHWAY_PUBLIC_URL', ['https:', 'http:']);
  if (production && publicUrl === undefined && reader.plain('ARCHWAY_PUBLIC_URL') === undefined) {
    reader.problems.push("ARCHWAY_PUBLIC_URL is missing: links in emails need the portal's https:// address.");
  } else if (production && publicUrl !== undefined && publicUrl.protocol !== 'https:') {
    reader.problems.push('ARCHWAY_PUBLIC_URL must be https:// in production.');
  }

  const logLevel = reader.plain('ARCHWAY_LOG_LEVEL') ?? 'info';
  if (!LOG_LEVELS.includes(logLevel)) {
    reader.problems.push(`ARCHWAY_LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')} (got "${logLevel}").`);
  }

  const secrets = readSecrets(reader, mode === 'server');
  const dataDir = path.resolve(cwd, reader.plain('ARCHWAY_DATA_DIR') ?? 'var');

  const smtp = reader.secret('ARCHWAY_SMTP_URL');
  if (smtp !== undefined && !/^smtps?:\/\/[^\s]+$/.test(smtp)) {
    reader.problems.push('ARCHWAY_SMTP_URL must look like smtp://user:password@host:587 or smtps://host:465.');
  }
  if (mode === 'server' && smtp === undefined) {
    reader.problems.push('ARCHWAY_SMTP_URL (or ARCHWAY_SMTP_URL_FILE) is missing: the portal must be able to send email.');
  }
  const mailFrom = reader.plain('ARCHWAY_MAIL_FROM');
  if (production && mailFrom === undefined)
    reader.problems.push("ARCHWAY_MAIL_FROM is missing: set the sender address of Archway's email.");
  else if (mailFrom !== undefined && !/^[^\s@<>]+@[^\s@<>]+$|<[^\s@<>]+@[^\s@<>]+>$/.test(mailFrom)) {
    reader.problems.push(`ARCHWAY_MAIL_FROM must be an address like archway@example.net or "Archway <archway@example.net>".`);
  }

  const trustProxy = (reader.plain('ARCHWAY_TRUST_PROXY') ?? '')
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p !== '');
  for (const entry of trustProxy) {
    const [address, bits, extra] = entry.split('/');
    const family = isIP(address ?? '');
    const maxBits = family === 6 ? 128 : 32;
    if (family === 0 || extra !== undefined || (bits !== undefined && (!/^\d+$/.test(bits) || Number(bits) > maxBits))) {
      reader.problems.push(`ARCHWAY_TRUST_PROXY entry "${entry}" is not an IP address or CIDR range.`);
    }
  }

  const auth: AuthConfig = {
    argon2: {
      memoryKiB: reader.int('ARCHWAY_ARGON2_MEMORY_KIB', 19_456, 19_456, 4_194_304),
      timeCost: reader.int('ARCHWAY_ARGON2_TIME_COST', 2, 2, 100),
      parallelism: reader.int('ARCHWAY_ARGON2_PARALLELISM', 1, 1, 64),
    },
    // One CPU stays free for the event loop, so a flood of sign-ins cannot slow every other page.
    hashConcurrency: reader.int('ARCHWAY_HASH_CONCURRENCY', Math.max(1, availableParallelism() - 1), 1, 256),
    sessionIdleMinutes: reader.int('ARCHWAY_SESSION_IDLE_MINUTES', 24, 1, 24 * 60),
    sessionAbsoluteHours: reader.int('ARCHWAY_SESSION_ABSOLUTE_HOURS', 12, 1, 24 * 30),
    ipRetentionDays: reader.int('ARCHWAY_IP_RETENTION_DAYS', 30, 1, 3650),
    trustProxy,
    requireHttps: reader.bool('ARCHWAY_REQUIRE_HTTPS', mode === 'server' || production),
    twoFactorForCustomers: reader.bool('ARCHWAY_TWO_FACTOR_FOR_CUSTOMERS', false),
    regulation: {
      ipMaxFailures: reader.int('ARCHWAY_SIGNIN_IP_MAX_FAILURES', 20, 3, 10_000),
      ipWindowMinutes: reader.int('ARCHWAY_SIGNIN_IP_WINDOW_MINUTES', 15, 1, 24 * 60),
      ipBlockMinutes: reader.int('ARCHWAY_SIGNIN_IP_BLOCK_MINUTES', 15, 1, 24 * 60),
      ipBlockMaxMinutes: reader.int('ARCHWAY_SIGNIN_IP_BLOCK_MAX_MINUTES', 24 * 60, 1, 7 * 24 * 60),
      userMaxFailures: reader.int('ARCHWAY_SIGNIN_USER_MAX_FAILURES', 5, 3, 1_000),
      userWindowMinutes: reader.int('ARCHWAY_SIGNIN_USER_WINDOW_MINUTES', 15, 1, 24 * 60),
      userBlockSeconds: reader.int('ARCHWAY_SIGNIN_USER_BLOCK_SECONDS', 60, 1, 3_600),
      userBlockMaxMinutes: reader.int('ARCHWAY_SIGNIN_USER_BLOCK_MAX_MINUTES', 15, 1, 24 * 60),
      escalationHours: reader.int('ARCHWAY_SIGNIN_ESCALATION_HOURS', 24, 1, 24 * 30),
    },
    resetRequestsPerIpPerHour: reader.int('ARCHWAY_RESET_REQUESTS_PER_IP_PER_HOUR', 10, 1, 10_000),
  };
  if (auth.regulation.ipBlockMaxMinutes < auth.regulation.ipBlockMinutes) {
    reader.problems.push('ARCHWAY_SIGNIN_IP_BLOCK_MAX_MINUTES must be at least ARCHWAY_SIGNIN_IP_BLOCK_MINUTES.');
  }
  if (auth.regulation.userBlockMaxMinutes * 60 < auth.regulation.userBlockSeconds) {
    reader.problems.push('ARCHWAY_SIGNIN_USER_BLOCK_MAX_MINUTES must be at least ARCHWAY_SIGNIN_USER_BLOCK_SECONDS.');
  }
  if (production && !auth.requireHttps) reader.problems.push('ARCHWAY_REQUIRE_HTTPS cannot be false in production.');
  const migrateOnStart = reader.bool('ARCHWAY_MIGRATE_ON_START', mode === 'first-look');

  const backupHosts = readBackupHosts(reader);
  // Building an archive is the expensive part of the service; first look waits minutes, not a day, to show it.
  const archives: ArchivesConfig = {
    cooldownMs: reader.duration('ARCHWAY_ARCHIVE_COOLDOWN', mode === 'first-look' ? 2 * 60_000 : 24 * 3_600_000, 30 * 86_400_000),
  };
  const firstLookBackupHost = readFirstLookBackupHost(reader, mode === 'first-look' && backupHosts.hosts.length === 0, cwd);
  const oldEncryptionKeys = readOldKeys(reader);
  const metrics = readMetrics(reader, mode === 'first-look');
  const oldPasswordPeppers = readOldPeppers(reader);

  if (reader.problems.length > 0) throw new ConfigError(reader.problems);

  const config: Config = {
    mode,
    production,
    host,
    port,
    publicUrl: (publicUrl?.origin ?? `http://${host.includes(':') ? `[${host}]` : host}:${port}`).replace(/\/$/, ''),
    dataDir,
    databaseUrl: database?.href ?? null,
    migrateOnStart,
    logLevel,
    secrets,
    oldEncryptionKeys,
    oldPasswordPeppers,
    mail: {
      smtpUrl: smtp ?? null,
      requireTlsByDefault: production,
      from: mailFrom ?? 'Archway <archway@localhost>',
      outboxDir: path.join(dataDir, 'outbox'),
    },
    auth,
    backupHosts,
    archives,
    metrics,
    firstLookBackupHost,
  };
  return Object.freeze(config);
}

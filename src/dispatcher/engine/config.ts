// Loads and checks the dispatcher's one JSON configuration file; every problem is named.
import { closeSync, fstatSync, openSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_IP_RETENTION_DAYS, DEFAULT_MAX_REQUEST_BYTES, isPlainObject } from '../../protocol/index.js';

export interface DispatcherConfig {
  readonly configPath: string;
  readonly backupRoot: string;
  readonly archiveRoot: string;
  readonly linkRoot: string;
  readonly stateDir: string;
  readonly secureLinkSecretFile: string;
  readonly downloadBaseUrl: string;
  readonly linkTtlSeconds: number;
  readonly linkGraceSeconds: number;
  readonly archiveRetentionDays: number;
  /** Client addresses and request details in the logs are anonymised after this (the portal's ARCHWAY_IP_RETENTION_DAYS). */
  readonly ipRetentionDays: number;
  readonly downloadLog: string;
  readonly maxRequestBytes: number;
  readonly nginxGroup: string;
  readonly niceness: number;
  readonly ioniceClass: number;
  /** How long archive.create may spend summing file sizes before it gives up on an estimate. */
  readonly estimateBudgetMs: number;
  readonly progressIntervalMs: number;
  readonly watchPollMs: number;
  readonly tarPath: string;
  readonly nicePath: string;
  readonly ionicePath: string;
  readonly findPath: string;
  /** Limits held here, where a stolen portal key cannot change them (docs/BACKUP-HOST.md). */
  readonly maxReadyArchivesPerCustomer: number;
  readonly archiveCreatePerCustomerPerDay: number;
  readonly archiveCreatePerHour: number;
  readonly linkIssuePerCustomerPerHour: number;
  readonly linkIssuePerHour: number;
}

const PATH_FIELDS = ['backupRoot', 'archiveRoot', 'linkRoot', 'stateDir', 'secureLinkSecretFile', 'downloadLog'] as const;

interface NumberField {
  def: number | null;
  min: number;
  max: number;
}
const NUMBER_FIELDS: Record<string, NumberField> = {
  linkTtlSeconds: { def: 60, min: 1, max: 86400 },
  linkGraceSeconds: { def: 300, min: 0, max: 86400 },
  archiveRetentionDays: { def: 7, min: 0, max: 3650 },
  ipRetentionDays: { def: DEFAULT_IP_RETENTION_DAYS, min: 1, max: 3650 },
  // Not below the default: the portal's client sizes its archive.statuses batches to fit it.
  maxRequestBytes: { def: DEFAULT_MAX_REQUEST_BYTES, min: DEFAULT_MAX_REQUEST_BYTES, max: 1 << 20 },
  niceness: { def: 19, min: 0, max: 19 },
  ioniceClass: { def: 3, min: 1, max: 3 },
  estimateBudgetMs: { def: 5000, min: 0, max: 600_000 },
  progressIntervalMs: { def: 250, min: 10, max: 60_000 },
  watchPollMs: { def: 250, min: 10, max: 60_000 },
  maxReadyArchivesPerCustomer: { def: 3, min: 1, max: 1000 },
  archiveCreatePerCustomerPerDay: { def: 10, min: 1, max: 100_000 },
  archiveCreatePerHour: { def: 60, min: 1, max: 100_000 },
  linkIssuePerCustomerPerHour: { def: 30, min: 1, max: 100_000 },
  linkIssuePerHour: { def: 600, min: 1, max: 1_000_000 },
};
// Tools are found in fixed system directories, never through PATH, which a caller might influence.
const TOOL_DEFAULTS = {
  tarPath: '/usr/bin/tar',
  nicePath: '/usr/bin/nice',
  ionicePath: '/usr/bin/ionice',
  findPath: '/usr/bin/find',
} as const;
const KNOWN = new Set<string>([
  ...PATH_FIELDS,
  ...Object.keys(NUMBER_FIELDS),
  ...Object.keys(TOOL_DEFAULTS),
  'downloadBaseUrl',
  'nginxGroup',
]);

export class ConfigError extends Error {}

export function configPath(): string {
  const fromEnv = process.env.ARCHWAY_DISPATCHER_CONFIG;
  if (fromEnv) return fromEnv;
  return join(dirname(fileURLToPath(import.meta.url)), 'dispatcher.json');
}

export function loadConfig(path = configPath()): DispatcherConfig {
  const fd = openSync(path, 'r');
  let text: string;
  try {
    const st = fstatSync(fd);
    // A config others can write would let them move the roots; refuse to run on it.
    if ((st.mode & 0o022) !== 0) throw new ConfigError(`${path} is writable by group or others`);
    if (typeof process.getuid === 'function' && st.uid !== process.getuid())
      throw new ConfigError(`${path} is not owned by the running user`);
    text = readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new ConfigError(`${path} is not valid JSON`);
  }
  if (!isPlainObject(raw)) throw new ConfigError(`${path} is not a JSON object`);
  const problems: string[] = [];
  for (const key of Object.keys(raw)) if (!KNOWN.has(key)) problems.push(`unknown field ${key}`);
  const out: Record<string, unknown> = { configPath: path };
  for (const key of PATH_FIELDS) {
    const v = raw[key];
    if (typeof v !== 'string' || !isAbsolute(v) || v.includes('\0')) problems.push(`${key} must be an absolute path`);
    else out[key] = v.replace(/\/+$/, '') || '/';
  }
  for (const [key, def] of Object.entries(TOOL_DEFAULTS)) {
    const v = raw[key] ?? def;
    if (typeof v !== 'string' || !isAbsolute(v)) problems.push(`${key} must be an absolute path`);
    else out[key] = v;
  }
  for (const [key, spec] of Object.entries(NUMBER_FIELDS)) {
    const v = raw[key] ?? spec.def;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < spec.min || v > spec.max)
      problems.push(`${key} must be an integer from ${spec.min} to ${spec.max}`);
    else out[key] = v;
  }
  const base = raw.downloadBaseUrl;
  if (typeof base !== 'string' || !/^https?:\/\/([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:\d{1,5})?$/.test(base.replace(/\/$/, ''))) {
    problems.push('downloadBaseUrl must be like https://dl.example.net (no path)');
  } else out.downloadBaseUrl = base.replace(/\/$/, '');
  const group = raw.nginxGroup ?? 'www-data';
  if (typeof group !== 'string' || !/^[a-z_][a-z0-9_-]{0,31}$/.test(group)) problems.push('nginxGroup must be a group name');
  else out.nginxGroup = group;
  if (problems.length > 0) throw new ConfigError(`${path}: ${problems.join('; ')}`);
  return Object.freeze(out) as unknown as DispatcherConfig;
}

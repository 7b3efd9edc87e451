// Reads the operator's list of named backup hosts (ARCHWAY_BACKUP_HOSTS_FILE, JSON or TOML): one problem per mistake.
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import path from 'node:path';
import { parse as parseToml } from 'smol-toml';
import type { SshBackupHostSettings } from './factory.js';

/** One host of the fleet as the portal uses it: how to reach its dispatcher and where its downloads are served. */
export interface NamedBackupHost<Settings = SshBackupHostSettings> {
  name: string;
  settings: Settings;
  /** The host's downloads vhost (its dispatcher's downloadBaseUrl); only `archway doctor` uses it. */
  downloadsUrl: string | null;
}

/** A host's name: what `users.backup_host` holds and what the operator types; lower case, like a DNS label or name. */
export const BACKUP_HOST_NAME = /^[a-z0-9](?:[a-z0-9.-]{0,61}[a-z0-9])?$/;
export const SSH_FINGERPRINT = /^SHA256:[A-Za-z0-9+/]{43}=?$/;
export const SSH_USER = /^[a-z_][a-z0-9_-]{0,31}$/;
const ADDRESS = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const KNOWN_KEYS = new Set(['name', 'address', 'port', 'user', 'keyFile', 'passphraseFile', 'fingerprint', 'downloadsUrl']);
/** A fleet this large is a typo or a generated file gone wrong; each host gets its own sync loop. */
const MAX_HOSTS = 200;

export function isBackupHostName(text: string): boolean {
  return BACKUP_HOST_NAME.test(text);
}

/** Parses the file's text; `file` names it in the problems. Relative key paths resolve against the file's folder. */
export function parseHostsFile(text: string, file: string): { hosts: NamedBackupHost[]; problems: string[] } {
  const problems: string[] = [];
  const where = `ARCHWAY_BACKUP_HOSTS_FILE (${path.basename(file)})`;
  let document: unknown;
  try {
    document = file.endsWith('.toml') ? parseToml(text) : JSON.parse(text);
  } catch (error) {
    const format = file.endsWith('.toml') ? 'TOML' : 'JSON';
    // The parser's own words say where; they never contain more than a line of the file.
    return { hosts: [], problems: [`${where} is not valid ${format}: ${(error as Error).message.split('\n')[0]}`] };
  }
  const list = (document as { hosts?: unknown } | null)?.hosts;
  if (!Array.isArray(list) || list.length === 0) {
    return { hosts: [], problems: [`${where} must list at least one host under "hosts" (JSON) or [[hosts]] (TOML).`] };
  }
  if (list.length > MAX_HOSTS) return { hosts: [], problems: [`${where} lists ${list.length} hosts; at most ${MAX_HOSTS} are allowed.`] };
  const hosts: NamedBackupHost[] = [];
  const seen = new Set<string>();
  const folder = path.dirname(file);
  list.forEach((entry: unknown, index) => {
    const at = `${where} host ${index + 1}`;
    if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) {
      problems.push(`${at} is not a table of settings.`);
      return;
    }
    const fields = entry as Record<string, unknown>;
    for (const key of Object.keys(fields)) if (!KNOWN_KEYS.has(key)) problems.push(`${at} has an unknown setting "${key}".`);
    const text = (key: string, required: boolean): string | undefined => {
      const value = fields[key];
      if (value === undefined) {
        if (required) problems.push(`${at} is missing "${key}".`);
        return undefined;
      }
      if (typeof value !== 'string' || value.trim() === '') {
        problems.push(`${at}: "${key}" must be a non-empty string.`);
        return undefined;
      }
      return value.trim();
    };
    const name = text('name', true);
    const label = name === undefined ? at : `${where} host "${name}"`;
    if (name !== undefined) {
      if (!isBackupHostName(name)) problems.push(`${at}: name "${name}" must be lower-case letters, digits, dots and dashes (at most 63).`);
      else if (seen.has(name)) problems.push(`${at}: the name "${name}" is used twice.`);
      seen.add(name);
    }
    const address = text('address', true);
    if (address !== undefined && isIP(address) === 0 && !ADDRESS.test(address))
      problems.push(`${label}: address "${address}" is not a host name or IP address.`);
    const port = fields.port ?? 22;
    if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535)
      problems.push(`${label}: port must be a whole number from 1 to 65535.`);
    const user = text('user', false) ?? 'archway';
    if (!SSH_USER.test(user)) problems.push(`${label}: user "${user}" is not a valid user name.`);
    const keyFile = text('keyFile', true);
    const fingerprint = text('fingerprint', true);
    if (fingerprint !== undefined && !SSH_FINGERPRINT.test(fingerprint))
      problems.push(`${label}: fingerprint must look like SHA256:<43 base64 characters> (ssh-keygen -lf <host key>.pub prints it).`);
    const passphraseFile = text('passphraseFile', false);
    let passphrase: string | undefined;
    if (passphraseFile !== undefined) {
      try {
        passphrase = readFileSync(path.resolve(folder, passphraseFile), 'utf8').replace(/\r?\n$/, '');
      } catch (error) {
        problems.push(`${label}: passphraseFile cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'}).`);
      }
    }
    const downloads = text('downloadsUrl', false);
    let downloadsUrl: string | null = null;
    if (downloads !== undefined) {
      try {
        const url = new URL(downloads);
        if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new Error('scheme');
        downloadsUrl = url.href.replace(/\/$/, '');
      } catch {
        problems.push(`${label}: downloadsUrl "${downloads}" is not an http(s) URL.`);
      }
    }
    if (name === undefined || address === undefined || keyFile === undefined || fingerprint === undefined) return;
    hosts.push({
      name,
      settings: {
        host: address,
        port: port as number,
        user,
        privateKeyPath: path.resolve(folder, keyFile),
        hostKeyFingerprint: fingerprint,
        ...(passphrase !== undefined ? { privateKeyPassphrase: passphrase } : {}),
      },
      downloadsUrl,
    });
  });
  return { hosts: problems.length === 0 ? hosts : [], problems };
}

/** Reads and parses the file; a file that cannot be read is one problem. */
export function readHostsFile(file: string): { hosts: NamedBackupHost[]; problems: string[] } {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    return {
      hosts: [],
      problems: [`ARCHWAY_BACKUP_HOSTS_FILE "${file}" cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'}).`],
    };
  }
  return parseHostsFile(text, file);
}

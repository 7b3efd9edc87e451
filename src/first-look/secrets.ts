// First-look mode keeps its own generated secrets under the data directory so a newcomer needs no setup.
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Secrets } from '../config.js';

interface StoredSecrets {
  sessionSecret: string;
  encryptionKey: string;
  passwordPepper: string;
}

/** Loads var/secrets.json, creating it (mode 0600) on first use; says which happened. */
export function loadOrCreateFirstLookSecrets(dataDir: string): { secrets: Secrets; file: string; created: boolean } {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const file = path.join(dataDir, 'secrets.json');
  let stored: StoredSecrets;
  let created = false;
  try {
    stored = JSON.parse(readFileSync(file, 'utf8')) as StoredSecrets;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    stored = {
      sessionSecret: randomBytes(32).toString('base64url'),
      encryptionKey: randomBytes(32).toString('hex'),
      passwordPepper: randomBytes(32).toString('base64url'),
    };
    // 'wx' refuses to overwrite a file another process wrote meanwhile.
    writeFileSync(file, `${JSON.stringify(stored, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
    created = true;
  }
  chmodSync(file, 0o600);
  return {
    secrets: {
      sessionSecret: stored.sessionSecret,
      encryptionKey: Buffer.from(stored.encryptionKey, 'hex'),
      passwordPepper: stored.passwordPepper,
    },
    file,
    created,
  };
}

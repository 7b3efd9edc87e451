// `archway keys status|rotate`: which encryption key protects the stored TOTP secrets, and moving them to the current key.
import { recordAudit } from '../users/audit.js';
import { countPendingMail } from '../mail/mail.service.js';
import pino from 'pino';
import { loadConfig } from '../config.js';
import { loggerOptions } from '../log.js';
import { openDatabase, resolveSecrets } from '../runtime.js';
import { createKeyRing, keyIdOf } from '../two-factor/key-ring.js';
import { reEncryptSecrets, secretsByKey } from '../two-factor/key-rotation.js';
import { UsageError, type Command } from './command.js';

/** sysexits(3) EX_DATAERR: some secrets could not be read with any configured key. */
const EX_DATAERR = 65;

export const keysCommand: Command = {
  name: 'keys',
  summary: 'Show which encryption key protects the stored two-factor secrets, or re-encrypt them under the current key.',
  usage: `Usage:
  archway keys status
  archway keys rotate

status   Prints the id of the current key (ARCHWAY_ENCRYPTION_KEY), of each older key
         (ARCHWAY_ENCRYPTION_KEYS_OLD), and how many two-factor secrets each one protects.
rotate   Re-encrypts every two-factor secret that is under an older key with the current key.

To change the key: put the old key into ARCHWAY_ENCRYPTION_KEYS_OLD (comma-separated if several),
the new one into ARCHWAY_ENCRYPTION_KEY, restart the portal, run "archway keys rotate", then
remove the old key from ARCHWAY_ENCRYPTION_KEYS_OLD and restart again. Key ids are the first
8 hex characters of a hash of the key; the keys themselves are never printed.`,
  options: {},
  maxPositionals: 1,
  async run({ positionals }) {
    const [action] = positionals;
    if (action !== 'status' && action !== 'rotate') {
      throw new UsageError(
        action === undefined
          ? 'Say what to do: archway keys status or rotate.'
          : `Unknown action "${action}" for "archway keys": use status or rotate.`,
      );
    }
    const loaded = loadConfig();
    const log = pino(loggerOptions(loaded.logLevel === 'info' ? 'warn' : loaded.logLevel) as pino.LoggerOptions);
    const config = resolveSecrets(loaded, log);
    const oldKeys = config.oldEncryptionKeys;
    const keys = createKeyRing(config.secrets.encryptionKey, oldKeys);
    const database = await openDatabase(config, log, { migrate: config.migrateOnStart });
    try {
      const before = await secretsByKey(database.db, keys);
      const describe = (counts: Record<string, number>) => {
        const lines = [`current key ${keys.currentKeyId}: ${counts[keys.currentKeyId] ?? 0} secret(s)`];
        for (const id of oldKeys.map(keyIdOf)) if (id !== keys.currentKeyId) lines.push(`older key   ${id}: ${counts[id] ?? 0} secret(s)`);
        for (const [id, n] of Object.entries(counts))
          if (!keys.knownKeyIds().includes(id)) lines.push(`UNKNOWN key ${id}: ${n} secret(s), not readable with any configured key`);
        return `${lines.join('\n')}\n`;
      };
      if (action === 'status') {
        process.stdout.write(describe(before));
        // Queued email is sealed under the key in use when it was queued and is not re-encrypted;
        // the worker also opens it with the older keys, so those must stay configured until it has gone.
        const pending = await countPendingMail(database.db);
        process.stdout.write(
          `queued email waiting to be sent: ${pending} (keep older keys in ARCHWAY_ENCRYPTION_KEYS_OLD until this is 0)\n`,
        );
        return 0;
      }
      const report = await reEncryptSecrets(database.db, keys);
      // Audited when a secret moved to the new key: a run that changed nothing is no event.
      if (report.reEncrypted > 0)
        await recordAudit(database.db, {
          actor: 'cli',
          action: 'keys.rotated',
          subject: null,
          detail: { key: keys.currentKeyId, reEncrypted: report.reEncrypted, alreadyCurrent: report.alreadyCurrent },
        });
      process.stdout.write(
        `Re-encrypted ${report.reEncrypted} secret(s) under key ${keys.currentKeyId}; ${report.alreadyCurrent} already were.\n`,
      );
      const unreadable = Object.entries(report.unreadable);
      if (unreadable.length > 0) {
        process.stderr.write(
          `archway keys: ${unreadable.map(([id, n]) => `${n} secret(s) under key ${id}`).join(', ')} could not be read: add that key to ARCHWAY_ENCRYPTION_KEYS_OLD and run this again.\n`,
        );
        return EX_DATAERR;
      }
      return 0;
    } finally {
      await database.close();
    }
  },
};

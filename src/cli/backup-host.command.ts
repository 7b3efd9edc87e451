// `archway backup-host check`: asks the configured backup host's dispatcher for `ping` and prints what it learned.
import { runBackupHostCheck } from '../backup-host/check.command.js';
import { loadConfig } from '../config.js';
import { UsageError, type Command } from './command.js';

export const backupHostCommand: Command = {
  name: 'backup-host',
  summary: 'Check the connection to the backup host.',
  usage: `Usage: archway backup-host check

Connects to the backup host named by ARCHWAY_BACKUP_HOST over SSH (key from
ARCHWAY_BACKUP_HOST_KEY_FILE, host key pinned by ARCHWAY_BACKUP_HOST_FINGERPRINT) or runs the
local dispatcher named by ARCHWAY_BACKUP_HOST_LOCAL_CONFIG, calls "ping", and prints the
dispatcher's version, clock, whether its roots exist and the free space. Exits 0 when all is well.`,
  options: {},
  maxPositionals: 1,
  async run({ positionals }) {
    if (positionals[0] !== 'check') throw new UsageError('Usage: archway backup-host check');
    const config = loadConfig();
    if (config.backupHost === null) {
      process.stderr.write('archway: no backup host is configured: set ARCHWAY_BACKUP_HOST (or ARCHWAY_BACKUP_HOST_LOCAL_CONFIG).\n');
      return 78;
    }
    return runBackupHostCheck(config.backupHost, process.stdout);
  },
};

// `archway backup-host check [NAME|--all]`: asks fleet hosts' dispatchers for `ping` and prints what each said.
import { runBackupHostCheck } from '../backup-host/check.command.js';
import { loadConfig } from '../config.js';
import { UsageError, type Command } from './command.js';

const USAGE = 'Usage: archway backup-host check [NAME | --all]';

export const backupHostCommand: Command = {
  name: 'backup-host',
  summary: 'Check the connection to one backup host, or to all of them.',
  usage: `${USAGE}

Connects to a backup host of the fleet (ARCHWAY_BACKUP_HOSTS_FILE, or the single host of
ARCHWAY_BACKUP_HOST / ARCHWAY_BACKUP_HOST_LOCAL_CONFIG) over SSH with its pinned host key, calls
"ping", and prints the dispatcher's version, clock, whether its roots exist and the free space.
NAME picks one host; --all (or no NAME, with a fleet of one) checks every host, one after another.
Exits 0 when every host checked is reachable and healthy, 1 otherwise.`,
  options: { all: { type: 'boolean' } },
  maxPositionals: 2,
  async run({ values, positionals }) {
    const [action, name] = positionals;
    if (action !== 'check') throw new UsageError(USAGE);
    if (name !== undefined && values.all === true) throw new UsageError(`Name one host or give --all, not both. ${USAGE}`);
    const { hosts } = loadConfig().backupHosts;
    if (hosts.length === 0) {
      process.stderr.write(
        'archway: no backup host is configured: set ARCHWAY_BACKUP_HOSTS_FILE, ARCHWAY_BACKUP_HOST or ARCHWAY_BACKUP_HOST_LOCAL_CONFIG.\n',
      );
      return 78;
    }
    let chosen = hosts;
    if (name !== undefined) {
      chosen = hosts.filter((h) => h.name === name);
      if (chosen.length === 0) {
        process.stderr.write(`archway: no backup host is named "${name}"; the fleet has: ${hosts.map((h) => h.name).join(', ')}.\n`);
        return 64;
      }
    } else if (values.all !== true && hosts.length > 1) {
      throw new UsageError(`The fleet has ${hosts.length} hosts: name one (${hosts.map((h) => h.name).join(', ')}) or give --all.`);
    }
    let failed = 0;
    for (const host of chosen) {
      if (hosts.length > 1) process.stdout.write(`[${host.name}]\n`);
      if ((await runBackupHostCheck(host.settings, process.stdout)) !== 0) failed++;
    }
    if (chosen.length > 1) process.stdout.write(`${chosen.length - failed} of ${chosen.length} backup hosts OK\n`);
    return failed === 0 ? 0 : 1;
  },
};

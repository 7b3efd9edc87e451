// `archway backup-host check`: pings the configured backup host and prints what it learned.
import { checkBackupHost, formatBackupHostCheck } from './check.js';
import { BackupHostError } from './errors.js';
import { backupHostFromSettings, type BackupHostSettings } from './factory.js';

export interface TextOut {
  write(text: string): unknown;
}

/** Returns the process exit code: 0 when the backup host is reachable and healthy, 1 otherwise. */
export async function runBackupHostCheck(config: BackupHostSettings, out: TextOut): Promise<number> {
  let check;
  try {
    check = await checkBackupHost(backupHostFromSettings(config));
  } catch (err) {
    // Only set-up problems (unreadable key, bad fingerprint) get here; checkBackupHost catches the rest.
    out.write(
      `backup host: not checked\n  problem: ${err instanceof BackupHostError ? err.message : (err as Error).message}\nresult: NOT OK\n`,
    );
    return 1;
  }
  out.write(formatBackupHostCheck(check));
  return check.ok ? 0 : 1;
}

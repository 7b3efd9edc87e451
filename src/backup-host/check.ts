// What `ping` tells the operator about a backup host: reachable, version, clock, roots and free space.
import { formatBytes } from '../format.js';
import type { BackupHost } from './backup-host.js';
import { BackupHostError } from './errors.js';

export interface BackupHostCheck {
  ok: boolean;
  target: string;
  version: string | null;
  roundTripMs: number | null;
  /** Backup host clock minus ours; links expire by the backup host's clock, so skew matters. */
  clockSkewSeconds: number | null;
  roots: { backup: boolean; archive: boolean; link: boolean } | null;
  freeBytes: number | null;
  problems: string[];
}

// Links live 60 s; a skew of this size makes a fresh link look expired or over-long.
const MAX_SKEW_SECONDS = 10;

export async function checkBackupHost(host: BackupHost, now: () => number = Date.now): Promise<BackupHostCheck> {
  const started = now();
  try {
    const ping = await host.ping();
    const finished = now();
    const theirs = Date.parse(ping.time);
    const skew = Number.isFinite(theirs) ? Math.round((theirs - (started + finished) / 2) / 1000) : null;
    const problems: string[] = [];
    for (const [name, ok] of Object.entries(ping.roots))
      if (!ok) problems.push(`the ${name} root is missing or not usable on the backup host`);
    if (skew === null) problems.push('the backup host reported an unreadable time');
    else if (Math.abs(skew) > MAX_SKEW_SECONDS)
      problems.push(`clocks differ by ${skew} s; download links would expire early or late (run NTP on both hosts)`);
    return {
      ok: problems.length === 0,
      target: host.describe,
      version: ping.version,
      roundTripMs: finished - started,
      clockSkewSeconds: skew,
      roots: ping.roots,
      freeBytes: ping.freeBytes,
      problems,
    };
  } catch (err) {
    const message = err instanceof BackupHostError ? `${err.name}: ${err.message}` : `unexpected error: ${(err as Error).message}`;
    return {
      ok: false,
      target: host.describe,
      version: null,
      roundTripMs: null,
      clockSkewSeconds: null,
      roots: null,
      freeBytes: null,
      problems: [message],
    };
  }
}

/** Plain lines for a terminal, one fact per line, problems last. */
export function formatBackupHostCheck(check: BackupHostCheck): string {
  const lines = [`backup host: ${check.target}`];
  if (check.version !== null) {
    lines.push(`  dispatcher version: ${check.version}`);
    lines.push(`  round trip: ${check.roundTripMs} ms`);
    lines.push(`  clock skew: ${check.clockSkewSeconds === null ? 'unknown' : `${check.clockSkewSeconds} s`}`);
    if (check.roots)
      lines.push(
        `  roots: backup ${check.roots.backup ? 'ok' : 'MISSING'}, archive ${check.roots.archive ? 'ok' : 'MISSING'}, link ${check.roots.link ? 'ok' : 'MISSING'}`,
      );
    lines.push(`  free space for archives: ${check.freeBytes === null ? 'unknown' : formatBytes(check.freeBytes)}`);
  }
  for (const p of check.problems) lines.push(`  problem: ${p}`);
  lines.push(check.ok ? 'result: OK' : 'result: NOT OK');
  return `${lines.join('\n')}\n`;
}

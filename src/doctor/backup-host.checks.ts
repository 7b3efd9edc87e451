// Doctor checks of the backup host: reached with the pinned key, the expected dispatcher and actions, clocks agree, downloads refuse a bad link.
import { checkBackupHost } from '../backup-host/check.js';
import { createBackupHost } from '../backup-host/backup-host.js';
import { BackupHostKeyMismatch } from '../backup-host/errors.js';
import { isLocalSettings, transportFromSettings } from '../backup-host/factory.js';
import type { Transport } from '../backup-host/transport.js';
import type { BackupHostConfig, Config } from '../config.js';
import { DISPATCHER_VERSION, parseAnswer, REMOTE_ACTIONS } from '../protocol/index.js';
import { describeError, fail, notApplicable, pass, skipped, type CheckResult } from './check-result.js';

const REACHABLE = ['backup-host.reachable', 'backup host reachable with the pinned host key'] as const;
const VERSION = ['backup-host.version', 'dispatcher version'] as const;
const ROOTS = ['backup-host.roots', 'dispatcher roots present'] as const;
const ACTIONS = ['backup-host.actions', 'dispatcher actions allowed through gate and sudo'] as const;
const CLOCK = ['backup-host.clock', 'clock skew with the backup host'] as const;
const DOWNLOADS = ['backup-host.downloads', 'downloads vhost refuses a wrongly signed link'] as const;

// Links live 60 s and are checked by the backup host's clock: a few seconds of skew is all they tolerate.
const MAX_CLOCK_SKEW_SECONDS = 5;

export async function checkBackupHostSetup(config: Config, now: () => number): Promise<CheckResult[]> {
  const { hosts } = config.backupHosts;
  if (hosts.length === 0) {
    return [
      notApplicable(
        'backup-host',
        'backup host',
        'none is configured (ARCHWAY_BACKUP_HOSTS_FILE or ARCHWAY_BACKUP_HOST), so customers cannot ask for archives',
      ),
    ];
  }
  if (hosts.length === 1) return checkOneHost(hosts[0]!.settings, hosts[0]!.downloadsUrl, now);
  // One host after another: each check names its host, and a slow one does not hide the others' results.
  const results: CheckResult[] = [];
  for (const { name, settings, downloadsUrl } of hosts) {
    for (const result of await checkOneHost(settings, downloadsUrl, now)) {
      results.push({ ...result, id: result.id.replace(/^backup-host/, `backup-host.${name}`), title: `${result.title} (${name})` });
    }
  }
  return results;
}

async function checkOneHost(settings: BackupHostConfig, downloadsUrl: string | null, now: () => number): Promise<CheckResult[]> {
  const local = isLocalSettings(settings);
  const reachable: readonly [string, string] = local ? ['backup-host.reachable', 'local dispatcher runs'] : REACHABLE;
  let transport: Transport;
  try {
    transport = transportFromSettings(settings);
  } catch (error) {
    // Only set-up errors get here: an unreadable or undecryptable key, a malformed fingerprint.
    const fix = 'make ARCHWAY_BACKUP_HOST_KEY_FILE readable by the portal, its passphrase right, and the fingerprint SHA256:...';
    return [
      fail(...reachable, describeError(error), fix),
      ...[VERSION, ROOTS, ACTIONS, CLOCK, DOWNLOADS].map(([id, title]) => skipped(id, title, 'the SSH client cannot be set up')),
    ];
  }
  // The downloads vhost needs no SSH, so it is checked whatever the ping says.
  const downloads = local
    ? Promise.resolve(notApplicable(...DOWNLOADS, 'a local dispatcher has no downloads NGINX'))
    : checkDownloads(downloadsUrl, now);

  // checkBackupHost turns the ping's error into text; keeping the error itself lets the fix name the cause.
  let pingError: unknown = null;
  const host = createBackupHost(transport);
  const check = await checkBackupHost(
    {
      ...host,
      ping: () =>
        host.ping().catch((e: unknown) => {
          pingError = e;
          throw e;
        }),
    },
    now,
  );
  if (check.version === null) {
    const because = 'the backup host did not answer';
    return [
      fail(...reachable, check.problems.join('; '), reachFix(pingError, local)),
      ...[VERSION, ROOTS, ACTIONS, CLOCK].map(([id, title]) => skipped(id, title, because)),
      await downloads,
    ];
  }
  const upgrade = 'install the dispatcher, gate and sudoers rule from this release on the backup host (docs/DEPLOY-BACKUP-HOST.md)';
  const missingRoots = Object.entries(check.roots ?? {})
    .filter(([, ok]) => !ok)
    .map(([name]) => name);
  return [
    pass(...reachable, `${check.target}, ping answered in ${check.roundTripMs} ms`),
    check.version === DISPATCHER_VERSION
      ? pass(...VERSION, check.version)
      : fail(...VERSION, `the backup host runs ${check.version}, this portal expects ${DISPATCHER_VERSION}`, upgrade),
    missingRoots.length === 0
      ? pass(...ROOTS, 'backup, archive and link roots exist')
      : fail(
          ...ROOTS,
          `missing or unusable: ${missingRoots.join(', ')}`,
          'create them as the dispatcher config names them (run "archway-dispatcher check" on the backup host)',
        ),
    await checkActions(transport, upgrade),
    checkClock(check.clockSkewSeconds),
    await downloads,
  ];
}

function reachFix(error: unknown, local: boolean): string {
  if (local) return 'run "npm run build" so the dispatcher exists, and check ARCHWAY_BACKUP_HOST_LOCAL_CONFIG';
  if (error instanceof BackupHostKeyMismatch) {
    return (
      'if the backup host was reinstalled, pin its new key in ARCHWAY_BACKUP_HOST_FINGERPRINT (ssh-keygen -lf on its host key); ' +
      'if not, someone may be in between: do not re-pin, investigate'
    );
  }
  return "check ARCHWAY_BACKUP_HOST and _PORT, the firewall, and that the portal's key is in the backup host's authorized_keys with this machine's address in from=";
}

/**
 * Sends every remote action a request with a field no action has: a dispatcher that knows the
 * action refuses it as a bad request, while a missing gate or sudoers line refuses it before the
 * dispatcher runs (no answer), and an older dispatcher says "Unknown action".
 */
async function checkActions(transport: Transport, fix: string): Promise<CheckResult> {
  const probe = JSON.stringify({ archway_doctor: true });
  const reached = await Promise.all(
    REMOTE_ACTIONS.filter((a) => a !== 'ping').map(async (action) => {
      const answer = parseAnswer((await transport.run(action, probe).catch(() => ({ stdout: '' }))).stdout);
      return { action, ok: answer !== null && !answer.ok && answer.error.reason === 'bad_request' };
    }),
  );
  const missing = reached.filter((r) => !r.ok).map((r) => r.action);
  if (missing.length === 0) return pass(...ACTIONS, `all ${REMOTE_ACTIONS.length} actions reach the dispatcher`);
  return fail(...ACTIONS, `not reaching the dispatcher: ${missing.join(', ')}`, fix);
}

function checkClock(skew: number | null): CheckResult {
  if (skew === null)
    return fail(...CLOCK, 'the backup host reported an unreadable time', "check the backup host's clock and time zone settings");
  const detail = `${skew >= 0 ? '+' : ''}${skew} s (at most ${MAX_CLOCK_SKEW_SECONDS} s)`;
  if (Math.abs(skew) <= MAX_CLOCK_SKEW_SECONDS) return pass(...CLOCK, detail);
  return fail(
    ...CLOCK,
    `${detail}: 60-second download links would expire early or live too long`,
    'run NTP (systemd-timesyncd or chrony) on both hosts',
  );
}

/** A link to a directory that cannot exist, signed with a wrong signature: only secure_link answers 403 for it. */
async function checkDownloads(baseUrl: string | null, now: () => number): Promise<CheckResult> {
  if (baseUrl === null) {
    return fail(
      ...DOWNLOADS,
      'no downloads URL is set (ARCHWAY_BACKUP_HOST_DOWNLOADS_URL, or downloadsUrl in the hosts file)',
      "set it to the downloads vhost's address, the downloadBaseUrl of the dispatcher's config",
    );
  }
  const expires = Math.floor(now() / 1000) + 60;
  const url = `${baseUrl}/dl/${'0'.repeat(32)}/archway-doctor.tar?md5=${'A'.repeat(22)}&expires=${expires}`;
  const fix = 'install the shipped downloads vhost (nginx/downloads.conf.in) with secure_link and check ARCHWAY_BACKUP_HOST_DOWNLOADS_URL';
  try {
    const response = await fetch(url, { redirect: 'manual', signal: AbortSignal.timeout(10_000) });
    await response.body?.cancel();
    if (response.status === 403) return pass(...DOWNLOADS, `${baseUrl} answered 403`);
    return fail(...DOWNLOADS, `${baseUrl} answered ${response.status}, not 403`, fix);
  } catch (error) {
    const cause = (error as { cause?: unknown }).cause;
    return fail(
      ...DOWNLOADS,
      `${baseUrl} did not answer: ${describeError(cause ?? error)}`,
      `make sure the downloads NGINX runs and this machine can reach it; ${fix}`,
    );
  }
}

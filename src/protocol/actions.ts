// The fixed set of dispatcher action names: the only words the command line may carry.

/** Actions the portal may call over SSH (the gate and the sudoers rule allow exactly these). */
export const REMOTE_ACTIONS = [
  'ping',
  'backups.list',
  'archive.create',
  'archive.status',
  'archive.statuses',
  'archive.list',
  'archive.cancel',
  'archive.arm',
  'link.issue',
  'events.since',
] as const;

/** Actions run only on the backup host itself (cron, systemd, installer); refused over SSH. */
export const LOCAL_ACTIONS = ['watch', 'sweep', 'check'] as const;

export type RemoteAction = (typeof REMOTE_ACTIONS)[number];
export type LocalAction = (typeof LOCAL_ACTIONS)[number];
export type Action = RemoteAction | LocalAction;

// A Set of literal strings, so membership is an exact, case-sensitive, whole-word comparison.
const REMOTE_SET: ReadonlySet<string> = new Set<string>(REMOTE_ACTIONS);
const LOCAL_SET: ReadonlySet<string> = new Set<string>(LOCAL_ACTIONS);

/** The one allow-set of every action name, remote and local. */
export const ALLOWED_ACTIONS: ReadonlySet<string> = new Set<string>([...REMOTE_ACTIONS, ...LOCAL_ACTIONS]);

export function isRemoteAction(word: unknown): word is RemoteAction {
  return typeof word === 'string' && REMOTE_SET.has(word);
}

export function isLocalAction(word: unknown): word is LocalAction {
  return typeof word === 'string' && LOCAL_SET.has(word);
}

export function isAction(word: unknown): word is Action {
  return typeof word === 'string' && ALLOWED_ACTIONS.has(word);
}

/** Event types the dispatcher records; `events.since` returns nothing else. */
export const EVENT_TYPES = [
  'archive.requested',
  'archive.ready',
  'archive.failed',
  'archive.cancelled',
  'archive.armed',
  'link.issued',
  'download.completed',
  'download.interrupted',
  'link.expired',
  'archive.expired',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** Archive states as `archive.status` reports them. */
export const ARCHIVE_STATES = ['building', 'ready', 'failed', 'cancelled', 'downloaded', 'expired'] as const;
export type ArchiveState = (typeof ARCHIVE_STATES)[number];

/** Exit codes of one dispatcher call. */
export const EXIT_DONE = 0;
export const EXIT_REFUSED = 1;
export const EXIT_INTERNAL = 2;

/**
 * Most archives one `archive.statuses` call answers: one call per host per poll, whatever the number
 * of builds, while the answer (about 400 bytes each) stays small and the call quick.
 */
export const MAX_ARCHIVE_STATUSES = 500;

/** Default cap on the request body; the config may raise it, never lower it (the portal's batches fit this). */
export const DEFAULT_MAX_REQUEST_BYTES = 65536;

/** Days the backup host keeps client addresses; the portal's ARCHWAY_IP_RETENTION_DAYS defaults to the same (a test holds them equal). */
export const DEFAULT_IP_RETENTION_DAYS = 30;

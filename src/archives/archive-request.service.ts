// The rules of asking for an archive, cancelling it and asking for the link again; routes map the outcomes to pages.
import type { FastifyBaseLogger } from 'fastify';
import type { Kysely } from 'kysely';
import { recordAudit } from '../users/audit.js';
import { addToRequestLog } from '../users/request-log.js';
import type { SignedInUser } from '../users/guards.js';
import { BackupHostError, BackupHostRefused, type BackupHost } from '../backup-host/index.js';
import type { Database } from '../db/database.js';
import { isCustomer, type SnapshotInfo } from '../protocol/index.js';
import {
  findActiveRequest,
  findRequest,
  insertArchiveRequest,
  lastDownloadedAt,
  markBuilding,
  markFinished,
  toArchiveRequest,
  type ArchiveRequest,
} from './archive-request.repository.js';
import { createOrAdopt } from './orphan-recovery.js';

/** How soon the poller first asks about a new build: progress shows up on the first page refresh. */
export const FIRST_POLL_DELAY_MS = 2_000;
/** "Send the link again" works at most once per this interval, so the button cannot flood an inbox. */
export const RESEND_INTERVAL_MS = 60_000;

export const UNAVAILABLE_MESSAGE = 'The backup service is not available right now. Nothing was started; please try again in a few minutes.';
export const BUSY_MESSAGE =
  'An archive of your backups is already being made. Wait until it is ready (or cancel it), then ask for the next one.';

interface ArchiveContext {
  db: Kysely<Database>;
  /** The fleet host of the archive: the customer's for a new one, the request's own for one that exists. */
  hostName: string;
  host: BackupHost;
  log: FastifyBaseLogger;
  now: Date;
  ip: string;
}

/** The name the backup host knows the customer by: the installation domain, when it is a valid one. */
export function customerOf(user: Pick<SignedInUser, 'role' | 'domain'>): string | null {
  if (user.role !== 'customer' || user.domain === null) return null;
  const domain = user.domain.toLowerCase();
  return isCustomer(domain) ? domain : null;
}

/** Snapshots newest first, as the page lists them (the dispatcher already sorts; this does not rely on it). */
export function newestFirst(snapshots: SnapshotInfo[]): SnapshotInfo[] {
  return [...snapshots].sort((a, b) => (a.time < b.time ? 1 : a.time > b.time ? -1 : a.name.localeCompare(b.name)));
}

/**
 * When the user may ask for the next archive, if that is still ahead: the cooldown runs from their
 * newest completed download. Null when they may ask now.
 */
export async function cooldownEnd(db: Kysely<Database>, userId: string, cooldownMs: number, now: Date): Promise<Date | null> {
  if (cooldownMs === 0) return null;
  const last = await lastDownloadedAt(db, userId);
  if (last === null) return null;
  const end = new Date(last.getTime() + cooldownMs);
  return end > now ? end : null;
}

export type StartOutcome =
  | { outcome: 'started'; request: ArchiveRequest }
  | { outcome: 'busy'; message: string; activeId: string | null }
  | { outcome: 'refused'; message: string }
  | { outcome: 'unavailable'; message: string };

/**
 * Records the request, then asks the backup host to build it. The row is committed first, so the
 * one-build-per-user index stops a second POST while the first waits for the backup host; any
 * failure marks the row failed, which frees the index again.
 */
export async function startArchive(context: ArchiveContext, user: SignedInUser, customer: string, snapshot: string): Promise<StartOutcome> {
  const { db, host, hostName, log, now, ip } = context;
  const active = await findActiveRequest(db, user.id);
  if (active !== null) return { outcome: 'busy', message: BUSY_MESSAGE, activeId: active.id };
  const request = await insertArchiveRequest(db, { userId: user.id, customer, backupHost: hostName, snapshot, ip, now });
  if (request === null) return { outcome: 'busy', message: BUSY_MESSAGE, activeId: (await findActiveRequest(db, user.id))?.id ?? null };
  const requestLog = log.child({ archiveRequestId: request.id });
  let archiveId: string | null = null;
  try {
    archiveId = await createOrAdopt(db, host, request, now, requestLog);
    if (!(await markBuilding(db, request.id, archiveId, new Date(now.getTime() + FIRST_POLL_DELAY_MS)))) {
      // Cancelled (or given up) while archive.create was running: stop the build it started.
      await stopOrphanedBuild(host, customer, archiveId, requestLog);
      return { outcome: 'started', request: (await findRequest(db, request.id)) ?? request };
    }
    await recordAudit(db, {
      actor: user.id,
      action: 'archive.requested',
      subject: user.id,
      ip,
      detail: { requestId: request.id, snapshot, archiveId },
    });
    requestLog.info({ archiveId }, 'archive requested');
    return { outcome: 'started', request: { ...request, archiveId, state: 'building' } };
  } catch (error) {
    // The build may have started before something here failed: nobody would ever collect it.
    if (archiveId !== null) await stopOrphanedBuild(host, customer, archiveId, requestLog);
    const logRefusal = (outcome: 'refused' | 'failure', reason: string) =>
      addToRequestLog(db, {
        at: now,
        userId: user.id,
        ip,
        kind: 'archive',
        event: 'requested',
        outcome,
        detail: { request: request.id, snapshot, reason },
      });
    if (error instanceof BackupHostRefused) {
      await markFinished(db, request.id, 'failed', error.userMessage, context.now);
      await logRefusal('refused', error.message);
      requestLog.info({ reason: error.message }, 'archive request refused by the backup host');
      return { outcome: 'refused', message: error.userMessage };
    }
    // Unreachable, timed out, or an internal error: the customer learns only that it did not start.
    await markFinished(db, request.id, 'failed', 'The backup service was not available.', context.now);
    await logRefusal('failure', error instanceof Error ? error.message : 'internal error');
    if (error instanceof BackupHostError) {
      requestLog.warn({ reason: error.message, kind: error.name }, 'archive request failed: backup host not available');
      return { outcome: 'unavailable', message: UNAVAILABLE_MESSAGE };
    }
    throw error;
  }
}

/** Best effort: the request row no longer wants this build (a failed cancel leaves it to finish and expire). */
async function stopOrphanedBuild(host: BackupHost, customer: string, archiveId: string, log: FastifyBaseLogger): Promise<void> {
  try {
    await host.cancelArchive({ customer, archiveId });
    log.info({ archiveId }, 'build started for a request that had already ended; cancelled it');
  } catch (error) {
    log.warn({ archiveId, reason: (error as Error).message }, 'build started for a request that had already ended; could not cancel it');
  }
}

export type CancelOutcome =
  | { outcome: 'cancelled' }
  | { outcome: 'not-building'; message: string }
  | { outcome: 'unavailable'; message: string }
  | { outcome: 'refused'; message: string };

/**
 * Stops a build. A request the backup host has not confirmed yet is simply ended here. The row stays
 * locked from the check to the end, so the poller (which skips locked rows) cannot take the backup
 * host's "cancelled" for a failure in between and email the owner about their own decision.
 */
export async function cancelArchive(context: ArchiveContext, user: SignedInUser, requestId: string): Promise<CancelOutcome> {
  const { db, host, log, now, ip } = context;
  return db.transaction().execute(async (trx) => {
    const row = await trx.selectFrom('archive_requests').selectAll().where('id', '=', requestId).forUpdate().executeTakeFirstOrThrow();
    const request = toArchiveRequest(row);
    if (request.state !== 'requested' && request.state !== 'building') {
      return { outcome: 'not-building', message: 'This archive is no longer being made, so there is nothing to cancel.' } as const;
    }
    if (request.archiveId !== null) {
      try {
        const answer = await host.cancelArchive({ customer: request.customer, archiveId: request.archiveId });
        if (answer.state !== 'cancelled') {
          // It finished (or failed) just before the cancel arrived: the poller records what it became.
          await trx.updateTable('archive_requests').set({ next_poll_at: now }).where('id', '=', request.id).execute();
          return { outcome: 'not-building', message: 'This archive finished before it could be cancelled.' } as const;
        }
      } catch (error) {
        if (error instanceof BackupHostRefused) return { outcome: 'refused', message: error.userMessage } as const;
        if (error instanceof BackupHostError) {
          log.warn({ archiveRequestId: request.id, reason: error.message }, 'cancel failed: backup host not available');
          return {
            outcome: 'unavailable',
            message:
              'The backup service is not available right now, so the archive could not be cancelled. Please try again in a few minutes.',
          } as const;
        }
        throw error;
      }
    }
    await markFinished(trx, request.id, 'cancelled', null, now);
    await recordAudit(trx, {
      actor: user.id,
      action: 'archive.cancelled',
      subject: user.id,
      ip,
      detail: { requestId: request.id, archiveId: request.archiveId },
    });
    log.info({ archiveRequestId: request.id }, 'archive cancelled by its owner');
    return { outcome: 'cancelled' } as const;
  });
}

export type ResendOutcome = { outcome: 'queued' } | { outcome: 'not-ready' | 'already-queued' | 'too-soon'; message: string };

/** Makes the link email due now; the link mailer then mints a new token, which retires every earlier link. */
export async function requestLinkAgain(
  db: Kysely<Database>,
  user: SignedInUser,
  request: ArchiveRequest,
  now: Date,
  ip: string,
): Promise<ResendOutcome> {
  if (request.state !== 'ready')
    return { outcome: 'not-ready', message: 'A link can only be sent for an archive that is ready and not yet downloaded.' };
  if (request.notifyDueAt !== null)
    return { outcome: 'already-queued', message: 'A new link is already on its way to your email address.' };
  if (request.notifiedAt !== null && now.getTime() - request.notifiedAt.getTime() < RESEND_INTERVAL_MS) {
    return {
      outcome: 'too-soon',
      message: 'We sent you a link less than a minute ago. Please check your email, or wait a minute before asking again.',
    };
  }
  const updated = await db
    .updateTable('archive_requests')
    .set({ notify_due_at: now, notify_attempts: 0, last_notify_error: null })
    .where('id', '=', request.id)
    .where('state', '=', 'ready')
    .where('notify_due_at', 'is', null)
    // Checked again here: an email sent while this request waited for the row counts too.
    .where((eb) => eb.or([eb('notified_at', 'is', null), eb('notified_at', '<=', new Date(now.getTime() - RESEND_INTERVAL_MS))]))
    .executeTakeFirst();
  if (Number(updated.numUpdatedRows) === 0)
    return { outcome: 'already-queued', message: 'A new link is already on its way to your email address.' };
  await recordAudit(db, { actor: user.id, action: 'archive.link_requested', subject: user.id, ip, detail: { requestId: request.id } });
  return { outcome: 'queued' };
}

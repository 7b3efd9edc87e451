// Asks the backup host how each building archive is doing, and records progress, readiness or failure.
import type { ArchiveJobContext } from '../context.js';
import type { FastifyBaseLogger } from 'fastify';
import type { Kysely, Transaction } from 'kysely';
import { startLoop } from '../background-loop.js';
import { BackupHostError, BackupHostRefused, type BackupHost } from '../backup-host/index.js';
import type { Database } from '../db/database.js';
import type { MailQueue } from '../mail/mail.service.js';
import { ACTIVE_STATES, claimDue, markFinished, type ArchiveRequest } from './archive-request.repository.js';
import type { ArchiveRequestState } from './archives.tables.js';
import { adoptOrFail, UNCONFIRMED_REQUEST_TIMEOUT_MS } from './orphan-recovery.js';

/** How often a building archive is asked about; the page refreshes every 5 s, so progress stays fresh. */
export const POLL_INTERVAL_MS = 3_000;
/** After a failed call the wait doubles from the poll interval up to this, so a down host is not hammered. */
export const MAX_ERROR_DELAY_MS = 5 * 60_000;

/** The longest the loop itself waits after a failure, so a new request is never left unpolled for long. */
const MAX_LOOP_PAUSE_MS = 30_000;

export type PollOutcome = 'waiting' | 'progress' | 'ready' | 'failed' | 'cancelled' | 'downloaded' | 'expired' | 'error';

export interface PollerOptions {
  /** The clock that decides what is due; tests pass the ctx's adjustable clock. */
  now?: () => Date;
  /** The backup host to ask; defaults to the one configured for the ctx. */
  host?: BackupHost;
  /** How long an idle poller waits before looking for due requests again. */
  idleMs?: number;
}

interface PollContext {
  db: Kysely<Database>;
  host: BackupHost;
  log: FastifyBaseLogger;
  now: () => Date;
  publicUrl: string;
  mail: MailQueue;
  /** Failed calls in a row in this loop, so the loop itself slows down while the host is down. */
  errors: number;
}

export function errorDelayMs(consecutiveErrors: number): number {
  return Math.min(POLL_INTERVAL_MS * 2 ** Math.max(0, consecutiveErrors - 1), MAX_ERROR_DELAY_MS);
}

/** How long a claimed request is left alone: the backup host call ends within 30 s. */
export const POLL_LEASE_MS = 60_000;

/**
 * Claims the request due longest (FOR UPDATE SKIP LOCKED) in a short transaction that leases it:
 * its next poll moves to the end of the lease, so another instance's poller skips it, and the
 * claim's mark is that exact time. No lock or transaction is held while the backup host answers.
 */
async function claimNext(context: PollContext, now: Date): Promise<{ request: ArchiveRequest; leasedUntil: Date } | null> {
  return context.db.transaction().execute(async (trx) => {
    const request = await claimDue(trx, 'next_poll_at', now, ACTIVE_STATES);
    if (request === null) return null;
    const leasedUntil = new Date(now.getTime() + POLL_LEASE_MS);
    await trx.updateTable('archive_requests').set({ next_poll_at: leasedUntil }).where('id', '=', request.id).execute();
    return { request, leasedUntil };
  });
}

/** One due request: claim (committed), ask the backup host, then record the answer in a second short transaction. */
async function pollNext(context: PollContext): Promise<PollOutcome | null> {
  const now = context.now();
  const claim = await claimNext(context, now);
  if (claim === null) return null;
  const { request, leasedUntil } = claim;
  const log = context.log.child({ archiveRequestId: request.id });
  // The answer is written only while this claim stands and the request is still active: a cancel,
  // or another poller after the lease ran out, wins over a late answer.
  const record = (write: (trx: Transaction<Database>) => Promise<unknown>) =>
    context.db.transaction().execute(async (trx) => {
      const still = await trx
        .selectFrom('archive_requests')
        .select('id')
        .where('id', '=', request.id)
        .where('next_poll_at', '=', leasedUntil)
        .where('state', 'in', ACTIVE_STATES)
        .forUpdate()
        .executeTakeFirst();
      if (still !== undefined) await write(trx);
    });
  const later = (ms: number) =>
    record((trx) =>
      trx
        .updateTable('archive_requests')
        .set({ next_poll_at: new Date(now.getTime() + ms) })
        .where('id', '=', request.id)
        .execute(),
    );

  if (request.archiveId === null) {
    if (now.getTime() - request.requestedAt.getTime() < UNCONFIRMED_REQUEST_TIMEOUT_MS) {
      await later(POLL_INTERVAL_MS);
      return 'waiting';
    }
    // Cut off between the insert and archive.create's answer: adopt the host's build, or fail it so it blocks nothing.
    return (await adoptOrFail(context.db, context.host, request, now, log)) === 'adopted' ? 'progress' : 'failed';
  }

  let status;
  try {
    status = await context.host.archiveStatus({ customer: request.customer, archiveId: request.archiveId });
  } catch (error) {
    if (error instanceof BackupHostRefused && error.code === 'not_found') {
      await record((trx) => finishWithEmail(trx, context, request, 'failed', 'The backup host no longer has this archive.', now));
      log.warn({ reason: error.message }, 'archive unknown to the backup host; marked failed');
      return 'failed';
    }
    if (error instanceof BackupHostError) {
      context.errors += 1;
      const failures = request.pollFailures + 1;
      await record((trx) =>
        trx
          .updateTable('archive_requests')
          .set({ poll_failures: failures, next_poll_at: new Date(now.getTime() + errorDelayMs(failures)) })
          .where('id', '=', request.id)
          .execute(),
      );
      log.warn({ reason: error.message, kind: error.name, failures }, 'archive status not available; will ask again later');
      return 'error';
    }
    throw error;
  }
  context.errors = 0;

  switch (status.state) {
    case 'building':
      await record((trx) =>
        trx
          .updateTable('archive_requests')
          .set({
            state: 'building',
            bytes_written: status.bytesWritten,
            files_written: status.filesWritten,
            percent: status.percent,
            poll_failures: 0,
            next_poll_at: new Date(now.getTime() + POLL_INTERVAL_MS),
          })
          .where('id', '=', request.id)
          .execute(),
      );
      return 'progress';
    case 'ready':
    case 'downloaded':
    case 'expired': {
      // "downloaded" or "expired" straight from "building" only happens when polling lagged far
      // behind; the row then goes there directly, with no email for a link that cannot work.
      const ready = status.state === 'ready';
      const state: ArchiveRequestState = status.state;
      await record((trx) =>
        trx
          .updateTable('archive_requests')
          .set({
            state,
            bytes_written: status.bytesWritten,
            files_written: status.filesWritten,
            percent: 100,
            size_bytes: status.sizeBytes,
            sha256: status.sha256,
            ready_at: status.readyAt === null ? now : new Date(status.readyAt),
            expires_at: status.expiresAt === null ? null : new Date(status.expiresAt),
            download_file_name: status.downloadFileName,
            notify_due_at: ready ? now : null,
            notify_attempts: 0,
            poll_failures: 0,
            finished_at: ready ? null : now,
          })
          .where('id', '=', request.id)
          .execute(),
      );
      log.info({ state, sizeBytes: status.sizeBytes }, 'archive built');
      return status.state;
    }
    case 'failed':
    case 'cancelled': {
      const reason =
        status.failureReason ??
        (status.state === 'cancelled' ? 'The archive was cancelled on the backup host.' : 'The archive could not be made.');
      const finished = status.state;
      await record((trx) => finishWithEmail(trx, context, request, finished, reason, now));
      log.info({ state: finished }, 'archive not made');
      return finished;
    }
  }
}

/** Ends the request and queues the "could not be made" email in the same transaction. */
async function finishWithEmail(
  db: Kysely<Database>,
  context: PollContext,
  request: ArchiveRequest,
  state: 'failed' | 'cancelled',
  reason: string,
  now: Date,
): Promise<void> {
  await markFinished(db, request.id, state, reason, now);
  const owner = await db.selectFrom('users').select(['email', 'status']).where('id', '=', request.userId).executeTakeFirst();
  if (owner === undefined || owner.status !== 'active') return;
  await context.mail.enqueue(db, {
    to: owner.email,
    template: 'archive-failed',
    data: {
      snapshot: request.snapshot,
      reason,
      backupsUrl: `${context.publicUrl}/backups`,
    },
  });
}

function contextFor(ctx: ArchiveJobContext, options: PollerOptions): PollContext | null {
  const host = options.host ?? ctx.backupHost();
  if (host === null) return null;
  return {
    db: ctx.database.db,
    host,
    log: ctx.log.child({ component: 'archive-poller' }),
    now: options.now ?? (() => ctx.clock.now()),
    publicUrl: ctx.config.publicUrl.replace(/\/+$/, ''),
    mail: ctx.mail,
    errors: 0,
  };
}

/** Polls every request due now, one after another, stopping at the first failed call; says what happened to each. */
export async function pollDueArchives(ctx: ArchiveJobContext, options: PollerOptions = {}): Promise<PollOutcome[]> {
  const context = contextFor(ctx, options);
  if (context === null) return [];
  const outcomes: PollOutcome[] = [];
  for (let outcome = await pollNext(context); outcome !== null; outcome = await pollNext(context)) {
    outcomes.push(outcome);
    if (outcome === 'error') break;
  }
  return outcomes;
}

/**
 * Runs until stopped: polls what is due, then waits (longer after failed calls). Returns the
 * stopper, which resolves once the request in hand is finished.
 */
export function startArchivePoller(ctx: ArchiveJobContext, options: PollerOptions = {}): () => Promise<void> {
  const context = contextFor(ctx, options);
  if (context === null) return async () => undefined;
  const idleMs = options.idleMs ?? POLL_INTERVAL_MS;
  return startLoop(async () => {
    let failed: boolean;
    try {
      const outcome = await pollNext(context);
      if (outcome !== null && outcome !== 'error') return 0;
      failed = outcome === 'error';
    } catch (error) {
      // The database may be restarting; the rows are still there when it is back.
      failed = true;
      context.log.error({ reason: (error as Error).message }, 'archive poller could not reach the database; trying again later');
    }
    // Each row keeps its own backoff in next_poll_at; the loop only slows down a little after a failure.
    return failed ? Math.min(errorDelayMs(context.errors), MAX_LOOP_PAUSE_MS) : idleMs;
  });
}

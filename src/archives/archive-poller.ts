// Asks the backup host how each building archive is doing, and records progress, readiness or failure.
import type { ArchiveJobContext } from '../context.js';
import type { FastifyBaseLogger } from 'fastify';
import type { Kysely, Transaction, Updateable } from 'kysely';
import { startLoop } from '../background-loop.js';
import { BackupHostError, BackupHostRefused, type BackupHost } from '../backup-host/index.js';
import type { Database } from '../db/database.js';
import type { MailQueue } from '../mail/mail.service.js';
import { ACTIVE_STATES, claimDueOnHost, markFinished, type ArchiveRequest } from './archive-request.repository.js';
import type { ArchiveStatusResult } from '../protocol/index.js';
import type { ArchiveRequestState, ArchiveRequestsTable } from './archives.tables.js';
import { adoptOrFail, UNCONFIRMED_REQUEST_TIMEOUT_MS } from './orphan-recovery.js';

/** How often a building archive is asked about; the page refreshes every 5 s, so progress stays fresh. */
export const POLL_INTERVAL_MS = 3_000;
/** After a failed call the wait doubles from the poll interval up to this, so a down host is not hammered. */
export const MAX_ERROR_DELAY_MS = 5 * 60_000;

/** The longest the loop itself waits after a failure, so a new request is never left unpolled for long. */
const MAX_LOOP_PAUSE_MS = 30_000;

export type PollOutcome = 'waiting' | 'progress' | 'ready' | 'failed' | 'cancelled' | 'downloaded' | 'expired' | 'error';

/**
 * Builds asked about in one call: a host with more due builds than this gets a second call at once.
 * The dispatcher's archive.statuses takes up to 500; 100 keeps each answer and transaction small.
 */
export const POLL_BATCH_SIZE = 100;

export interface PollerOptions {
  /** The clock that decides what is due; tests pass the ctx's adjustable clock. */
  now?: () => Date;
  /** One host for every request, instead of each request's own fleet host (tests wrap it). */
  host?: BackupHost;
  /** How long an idle poller waits before looking for due requests again. */
  idleMs?: number;
}

interface PollContext {
  db: Kysely<Database>;
  /** The fleet host's name (its rows) and client. */
  hostName: string;
  host: () => BackupHost;
  log: FastifyBaseLogger;
  now: () => Date;
  publicUrl: string;
  mail: MailQueue;
  /** Failed calls in a row in this host's loop, so the loop slows down while its host is down. */
  errors: number;
}

export function errorDelayMs(consecutiveErrors: number): number {
  return Math.min(POLL_INTERVAL_MS * 2 ** Math.max(0, consecutiveErrors - 1), MAX_ERROR_DELAY_MS);
}

/** How long a claimed request is left alone: the backup host call ends within 30 s. */
export const POLL_LEASE_MS = 60_000;

interface Claim {
  request: ArchiveRequest;
  leasedUntil: Date;
}

/**
 * Claims the host's requests due longest (FOR UPDATE SKIP LOCKED) in a short transaction that
 * leases them: their next poll moves to the end of the lease, so another instance's poller skips
 * them, and the claim's mark is that exact time. No lock or transaction is held while the backup
 * host answers.
 */
async function claimDueBatch(context: PollContext, now: Date): Promise<Claim[]> {
  return context.db.transaction().execute(async (trx) => {
    const requests = await claimDueOnHost(trx, context.hostName, now, POLL_BATCH_SIZE);
    if (requests.length === 0) return [];
    const leasedUntil = new Date(now.getTime() + POLL_LEASE_MS);
    await trx
      .updateTable('archive_requests')
      .set({ next_poll_at: leasedUntil })
      .where(
        'id',
        'in',
        requests.map((r) => r.id),
      )
      .execute();
    return requests.map((request) => ({ request, leasedUntil }));
  });
}

/**
 * The answer is written only while this claim stands and the request is still active: a cancel,
 * or another poller after the lease ran out, wins over a late answer.
 */
function recorder(context: PollContext, { request, leasedUntil }: Claim) {
  return (write: (trx: Transaction<Database>) => Promise<unknown>) =>
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
}

/** Sets these columns of the claimed request, while the claim stands. */
function updateClaimed(context: PollContext, claim: Claim, values: Updateable<ArchiveRequestsTable>): Promise<void> {
  return recorder(context, claim)((trx) => trx.updateTable('archive_requests').set(values).where('id', '=', claim.request.id).execute());
}

/**
 * One batch of the host's due requests: claim (committed), one archive.statuses call for all the
 * confirmed builds, then each answer recorded in its own short transaction. A build the host has
 * not confirmed yet is adopted or failed on its own (rare: a cut between insert and archive.create).
 */
async function pollBatch(context: PollContext): Promise<PollOutcome[] | null> {
  const now = context.now();
  const claims = await claimDueBatch(context, now);
  if (claims.length === 0) return null;
  const outcomes: PollOutcome[] = [];
  const confirmed = claims.filter((c) => c.request.archiveId !== null);
  for (const claim of claims.filter((c) => c.request.archiveId === null)) outcomes.push(await pollUnconfirmed(context, claim, now));
  if (confirmed.length === 0) return outcomes;
  let answers: ArchiveStatusAnswer[];
  try {
    answers = await statusesOf(
      context.host(),
      confirmed.map((c) => c.request),
    );
  } catch (error) {
    if (!(error instanceof BackupHostError)) throw error;
    context.errors += 1;
    for (const claim of confirmed) outcomes.push(await recordCallFailure(context, claim, error, now));
    return outcomes;
  }
  context.errors = 0;
  for (const [i, claim] of confirmed.entries()) outcomes.push(await recordAnswer(context, claim, answers[i]!, now));
  return outcomes;
}

/** One build's answer: its status, or that the host does not know it (for this customer). */
type ArchiveStatusAnswer = { ok: true; status: ArchiveStatusResult } | { ok: false; reason: string };

/**
 * The status of each request's build, in order, from one archive.statuses call (the client splits
 * only past its size caps). "Not found" answers its own build; any other refusal fails the batch,
 * as it failed the single call before.
 */
async function statusesOf(host: BackupHost, requests: ArchiveRequest[]): Promise<ArchiveStatusAnswer[]> {
  const outcomes = await host.archiveStatuses(requests.map((r) => ({ customer: r.customer, archiveId: r.archiveId! })));
  return outcomes.map((outcome) => {
    if (outcome.ok) return { ok: true, status: outcome.status };
    if (outcome.error instanceof BackupHostRefused && outcome.error.code === 'not_found')
      return { ok: false, reason: outcome.error.message };
    throw outcome.error;
  });
}

async function pollUnconfirmed(context: PollContext, claim: Claim, now: Date): Promise<PollOutcome> {
  const { request } = claim;
  if (now.getTime() - request.requestedAt.getTime() < UNCONFIRMED_REQUEST_TIMEOUT_MS) {
    await updateClaimed(context, claim, { next_poll_at: new Date(now.getTime() + POLL_INTERVAL_MS) });
    return 'waiting';
  }
  const log = context.log.child({ archiveRequestId: request.id });
  try {
    // Cut off between the insert and archive.create's answer: adopt the host's build, or fail it so it blocks nothing.
    return (await adoptOrFail(context.db, context.host(), request, now, log)) === 'adopted' ? 'progress' : 'failed';
  } catch (error) {
    if (!(error instanceof BackupHostError)) throw error;
    context.errors += 1;
    return recordCallFailure(context, claim, error, now);
  }
}

/** The host could not be asked: this request waits longer each time (its own backoff), the others are unaffected. */
async function recordCallFailure(context: PollContext, claim: Claim, error: BackupHostError, now: Date): Promise<PollOutcome> {
  const failures = claim.request.pollFailures + 1;
  await updateClaimed(context, claim, { poll_failures: failures, next_poll_at: new Date(now.getTime() + errorDelayMs(failures)) });
  context.log.warn(
    { archiveRequestId: claim.request.id, host: context.hostName, reason: error.message, kind: error.name, failures },
    'archive status not available; will ask again later',
  );
  return 'error';
}

async function recordAnswer(context: PollContext, claim: Claim, answer: ArchiveStatusAnswer, now: Date): Promise<PollOutcome> {
  const { request } = claim;
  const record = recorder(context, claim);
  const log = context.log.child({ archiveRequestId: request.id });
  if (!answer.ok) {
    await record((trx) => finishWithEmail(trx, context, request, 'failed', 'The backup host no longer has this archive.', now));
    log.warn({ reason: answer.reason }, 'archive unknown to the backup host; marked failed');
    return 'failed';
  }
  const status = answer.status;
  switch (status.state) {
    case 'building':
      await updateClaimed(context, claim, {
        state: 'building',
        bytes_written: status.bytesWritten,
        files_written: status.filesWritten,
        percent: status.percent,
        poll_failures: 0,
        next_poll_at: new Date(now.getTime() + POLL_INTERVAL_MS),
      });
      return 'progress';
    case 'ready':
    case 'downloaded':
    case 'expired': {
      // "downloaded" or "expired" straight from "building" only happens when polling lagged far
      // behind; the row then goes there directly, with no email for a link that cannot work.
      const ready = status.state === 'ready';
      const state: ArchiveRequestState = status.state;
      await updateClaimed(context, claim, {
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
      });
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

function contextsFor(ctx: ArchiveJobContext, options: PollerOptions): PollContext[] {
  const only = options.host;
  return ctx.backupHosts.names.map((hostName) => ({
    db: ctx.database.db,
    hostName,
    host: only === undefined ? () => ctx.backupHosts.use(hostName) : () => only,
    log: ctx.log.child({ component: 'archive-poller', host: hostName }),
    now: options.now ?? (() => ctx.clock.now()),
    publicUrl: ctx.config.publicUrl.replace(/\/+$/, ''),
    mail: ctx.mail,
    errors: 0,
  }));
}

/** Polls every request due now, host by host, batch after batch, stopping a host at its first failed call. */
export async function pollDueArchives(ctx: ArchiveJobContext, options: PollerOptions = {}): Promise<PollOutcome[]> {
  const outcomes: PollOutcome[] = [];
  for (const context of contextsFor(ctx, options)) {
    for (let batch = await pollBatch(context); batch !== null; batch = await pollBatch(context)) {
      outcomes.push(...batch);
      if (batch.includes('error')) break;
    }
  }
  return outcomes;
}

/**
 * Runs until stopped: one loop per fleet host, so a host that is down slows only its own builds.
 * Each loop polls what is due (at most one archive.statuses call per batch), then waits (longer
 * after failed calls). Returns the stopper, which resolves once every batch in hand is finished.
 */
export function startArchivePoller(ctx: ArchiveJobContext, options: PollerOptions = {}): () => Promise<void> {
  const idleMs = options.idleMs ?? POLL_INTERVAL_MS;
  const stops = contextsFor(ctx, options).map((context) =>
    startLoop(async () => {
      let failed: boolean;
      try {
        const outcomes = await pollBatch(context);
        failed = outcomes?.includes('error') ?? false;
        // A full batch means more are due now; otherwise the next ones are due a poll interval from now.
        if (outcomes !== null && !failed && outcomes.length === POLL_BATCH_SIZE) return 0;
      } catch (error) {
        // The database may be restarting; the rows are still there when it is back.
        failed = true;
        context.log.error({ reason: (error as Error).message }, 'archive poller could not reach the database; trying again later');
      }
      // Each row keeps its own backoff in next_poll_at; the loop only slows down a little after a failure.
      return failed ? Math.min(errorDelayMs(Math.max(1, context.errors)), MAX_LOOP_PAUSE_MS) : idleMs;
    }),
  );
  return async () => {
    await Promise.all(stops.map((stop) => stop()));
  };
}

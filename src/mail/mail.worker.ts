// Sends queued mail: claims one due row at a time, delivers it, and records sent, retry or given up.
import { FINISHED_MAIL_KEPT_DAYS, MAIL_RETRY, retryDelayMs } from './mail-policy.js';
import type { JobContext } from '../context.js';
import type { FastifyBaseLogger } from 'fastify';
import type { Kysely, Updateable } from 'kysely';
import { startLoop } from '../background-loop.js';
import type { Database } from '../db/database.js';
import { isDatabaseUnavailable } from '../db/unavailable.js';
import type { RenderedMail } from './mail.renderer.js';
import type { MailQueueTable } from './mail.tables.js';
import { mailQueueKeys, unseal } from './mail-seal.js';
import { createMailTransport, DELIVERY_DEADLINE_MS, MailNotSent, type MailTransport } from './mail.transport.js';

export interface MailWorkerOptions {
  /** The clock that decides what is due; tests move it instead of waiting. */
  now?: () => Date;
  /** How long an idle worker waits before looking for due mail again. */
  pollIntervalMs?: number;
  /** The overall deadline of one delivery; tests shorten it. */
  deliveryDeadlineMs?: number;
}

export type DeliveryOutcome = 'sent' | 'retry' | 'failed';

interface WorkerContext {
  db: Kysely<Database>;
  /** The current mail queue key first, then earlier ones. */
  keys: Buffer[];
  transport: MailTransport;
  log: FastifyBaseLogger;
  now: () => Date;
  /** How long a claimed row waits before it is due again if its outcome is never recorded. */
  leaseMs: number;
}

/** A claimed row is due again this long after its delivery's deadline, if its outcome was never recorded. */
const LEASE_MARGIN_MS = 60_000;

/**
 * Claim, commit, call, record: a short transaction claims the oldest due message (FOR UPDATE
 * SKIP LOCKED, then its attempt is counted and it is leased until the delivery surely ended), the
 * SMTP call runs with no transaction or row lock held, and a second short statement records the
 * outcome. A crash or a lost database during the call leaves the lease, after which the message is
 * sent again with the same Message-ID: delivery is at least once, and the window is the call itself.
 */
async function deliverNext(context: WorkerContext): Promise<DeliveryOutcome | null> {
  const now = context.now();
  const row = await context.db.transaction().execute(async (trx) => {
    const due = await trx
      .selectFrom('mail_queue')
      .select(['id', 'recipient', 'template', 'body', 'attempts'])
      .where('status', '=', 'pending')
      .where('next_attempt_at', '<=', now)
      .orderBy('next_attempt_at')
      .limit(1)
      .forUpdate()
      .skipLocked()
      .executeTakeFirst();
    if (due === undefined) return null;
    await trx
      .updateTable('mail_queue')
      .set({ attempts: due.attempts + 1, next_attempt_at: new Date(now.getTime() + context.leaseMs) })
      .where('id', '=', due.id)
      .execute();
    return due;
  });
  if (row === null) return null;
  const attempts = row.attempts + 1;
  const log = context.log.child({ mailId: row.id, template: row.template });
  // Recorded only while the claim is still ours: a lease that ran out meanwhile belongs to the next attempt.
  const record = (values: Updateable<MailQueueTable>) =>
    recordOutcome(() =>
      context.db
        .updateTable('mail_queue')
        .set(values)
        .where('id', '=', row.id)
        .where('attempts', '=', attempts)
        .where('status', '=', 'pending')
        .execute(),
    );
  try {
    const mail = openBody(context.keys, row);
    await context.transport.deliver(row.id, row.recipient, mail);
  } catch (error) {
    const failure =
      error instanceof MailNotSent
        ? error
        : new MailNotSent('the queued body cannot be opened (altered, moved to another row, or sealed with another key)', true);
    // A refusal often quotes the address; the row keeps it, the log need not.
    const loggedReason = failure.reason.split(row.recipient).join('[recipient]');
    const ended = context.now();
    if (failure.permanent || attempts >= MAIL_RETRY.maxAttempts) {
      // Giving up removes the body too: a message that will never be sent must not keep its link.
      await record({ status: 'failed', body: null, last_error: failure.reason, finished_at: ended });
      log.error({ attempts, reason: loggedReason }, 'mail given up');
      return 'failed';
    }
    const nextAttemptAt = new Date(ended.getTime() + retryDelayMs(attempts));
    await record({ last_error: failure.reason, next_attempt_at: nextAttemptAt });
    log.warn({ attempts, nextAttemptAt, reason: loggedReason }, 'mail not sent; will retry');
    return 'retry';
  }
  await record({ status: 'sent', body: null, last_error: null, finished_at: context.now() });
  log.info({ attempts }, 'mail sent');
  return 'sent';
}

/**
 * Records what the call did, trying again a few times over about 2 s when the database is away: a
 * pooled connection the server just dropped fails once before the pool notices.
 */
export async function recordOutcome<T>(write: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await write();
    } catch (error) {
      if (attempt >= 4 || !isDatabaseUnavailable(error)) throw error;
      await new Promise((resolve) => setTimeout(resolve, 250 * attempt));
    }
  }
}

function openBody(keys: Buffer[], row: { id: string; recipient: string; body: Buffer | null }): RenderedMail {
  if (row.body === null) throw new Error('a pending row has no body');
  const sealed = Buffer.from(row.body);
  for (const key of keys.slice(0, -1)) {
    try {
      return JSON.parse(unseal(key, row.id, row.recipient, sealed)) as RenderedMail;
    } catch {
      // sealed under an earlier key, or altered: the last key's failure is the one reported
    }
  }
  return JSON.parse(unseal(keys.at(-1)!, row.id, row.recipient, sealed)) as RenderedMail;
}

async function purgeFinishedMail(db: Kysely<Database>, now: Date): Promise<void> {
  await db
    .deleteFrom('mail_queue')
    .where('status', '<>', 'pending')
    .where('finished_at', '<', new Date(now.getTime() - FINISHED_MAIL_KEPT_DAYS * 86_400_000))
    .execute();
}

function workerContext(ctx: JobContext, options: MailWorkerOptions): WorkerContext {
  const deadlineMs = options.deliveryDeadlineMs ?? DELIVERY_DEADLINE_MS;
  return {
    db: ctx.database.db,
    keys: mailQueueKeys(ctx.config),
    transport: createMailTransport(ctx.config.mail, deadlineMs),
    log: ctx.log.child({ component: 'mail' }),
    now: options.now ?? (() => ctx.clock.now()),
    leaseMs: deadlineMs + LEASE_MARGIN_MS,
  };
}

/** Delivers every message due now, one after another, and says what happened to each. */
export async function deliverDueMail(ctx: JobContext, options: Omit<MailWorkerOptions, 'pollIntervalMs'> = {}): Promise<DeliveryOutcome[]> {
  const context = workerContext(ctx, options);
  const { transport } = context;
  const outcomes: DeliveryOutcome[] = [];
  try {
    for (let outcome = await deliverNext(context); outcome !== null; outcome = await deliverNext(context)) outcomes.push(outcome);
  } finally {
    transport.close();
  }
  return outcomes;
}

/**
 * Runs until stopped: sends what is due, then waits pollIntervalMs (default 5 s) before looking
 * again. Returns the stopper, which resolves once the message in hand is finished.
 */
export function startMailWorker(ctx: JobContext, options: MailWorkerOptions = {}): () => Promise<void> {
  const pollIntervalMs = options.pollIntervalMs ?? 5_000;
  const context = workerContext(ctx, options);
  const { transport, log } = context;
  let lastPurge = 0;
  const stop = startLoop(async () => {
    try {
      const outcome = await deliverNext(context);
      if (outcome !== null) return 0;
      const now = context.now();
      if (now.getTime() - lastPurge > 3_600_000) {
        await purgeFinishedMail(context.db, now);
        lastPurge = now.getTime();
      }
    } catch (error) {
      // The database may be down or restarting; the queue is still there when it is back.
      log.error({ reason: (error as Error).message }, 'mail worker could not reach the queue; trying again later');
    }
    return pollIntervalMs;
  });
  return async () => {
    await stop();
    transport.close();
  };
}

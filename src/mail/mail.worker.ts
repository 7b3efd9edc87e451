// Sends queued mail: claims one due row at a time, delivers it, and records sent, retry or given up.
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import type { Kysely } from 'kysely';
import { startLoop } from '../background-loop.js';
import type { Config, Secrets } from '../config.js';
import type { Database } from '../db/database.js';
import type { RenderedMail } from './mail.renderer.js';
import { mailQueueKeys, unseal } from './mail-seal.js';
import { createMailTransport, MailNotSent, type MailTransport } from './mail.transport.js';

/**
 * 10 attempts, waits doubling from 1 minute up to 1 hour: the last attempt is about 4 hours
 * after the first, which outlasts a relay's restart or a short outage; a reset link in it
 * expires after 1 hour anyway, an invitation does not.
 */
export const MAIL_RETRY = { maxAttempts: 10, firstDelayMs: 60_000, maxDelayMs: 60 * 60_000 } as const;

/** Finished rows (recipient, template, outcome; never a body) are kept this long for the operator, then deleted. */
export const FINISHED_MAIL_KEPT_DAYS = 30;

export function retryDelayMs(failedAttempts: number): number {
  return Math.min(MAIL_RETRY.firstDelayMs * 2 ** (failedAttempts - 1), MAIL_RETRY.maxDelayMs);
}

export interface MailWorkerOptions {
  /** The clock that decides what is due; tests move it instead of waiting. */
  now?: () => Date;
  /** How long an idle worker waits before looking for due mail again. */
  pollIntervalMs?: number;
}

export type DeliveryOutcome = 'sent' | 'retry' | 'failed';

interface WorkerContext {
  db: Kysely<Database>;
  /** The current mail queue key first, then earlier ones. */
  keys: Buffer[];
  transport: MailTransport;
  log: FastifyBaseLogger;
  now: () => Date;
}

type MailApp = Pick<FastifyInstance, 'log'> & { config: Config & { secrets: Secrets }; database: { db: Kysely<Database> } };

/**
 * Claims the oldest due message with FOR UPDATE SKIP LOCKED and keeps the row locked while it is
 * sent, so another worker (here or in another instance) skips it instead of sending it again.
 * A crash between sending and committing sends it again: delivery is at least once.
 */
async function deliverNext(context: WorkerContext): Promise<DeliveryOutcome | null> {
  const now = context.now();
  return context.db.transaction().execute(async (trx) => {
    const row = await trx
      .selectFrom('mail_queue')
      .select(['id', 'recipient', 'template', 'body', 'attempts'])
      .where('status', '=', 'pending')
      .where('next_attempt_at', '<=', now)
      .orderBy('next_attempt_at')
      .limit(1)
      .forUpdate()
      .skipLocked()
      .executeTakeFirst();
    if (row === undefined) return null;
    const attempts = row.attempts + 1;
    const log = context.log.child({ mailId: row.id, template: row.template });
    try {
      const mail = openBody(context.keys, row);
      await context.transport.deliver(row.id, row.recipient, mail);
    } catch (error) {
      const failure = error instanceof MailNotSent ? error : new MailNotSent('the queued body cannot be opened (altered, moved to another row, or sealed with another key)', true);
      // A refusal often quotes the address; the row keeps it, the log need not.
      const loggedReason = failure.reason.split(row.recipient).join('[recipient]');
      if (failure.permanent || attempts >= MAIL_RETRY.maxAttempts) {
        // Giving up removes the body too: a message that will never be sent must not keep its link.
        await trx
          .updateTable('mail_queue')
          .set({ status: 'failed', body: null, attempts, last_error: failure.reason, finished_at: now })
          .where('id', '=', row.id)
          .execute();
        log.error({ attempts, reason: loggedReason }, 'mail given up');
        return 'failed';
      }
      const nextAttemptAt = new Date(now.getTime() + retryDelayMs(attempts));
      await trx
        .updateTable('mail_queue')
        .set({ attempts, last_error: failure.reason, next_attempt_at: nextAttemptAt })
        .where('id', '=', row.id)
        .execute();
      log.warn({ attempts, nextAttemptAt, reason: loggedReason }, 'mail not sent; will retry');
      return 'retry';
    }
    await trx
      .updateTable('mail_queue')
      .set({ status: 'sent', body: null, attempts, last_error: null, finished_at: now })
      .where('id', '=', row.id)
      .execute();
    log.info({ attempts }, 'mail sent');
    return 'sent';
  });
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

/** Delivers every message due now, one after another, and says what happened to each. */
export async function deliverDueMail(app: MailApp, options: Pick<MailWorkerOptions, 'now'> = {}): Promise<DeliveryOutcome[]> {
  const transport = createMailTransport(app.config.mail);
  const context: WorkerContext = { db: app.database.db, keys: mailQueueKeys(app.config), transport, log: app.log.child({ component: 'mail' }), now: options.now ?? (() => new Date()) };
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
export function startMailWorker(app: MailApp, options: MailWorkerOptions = {}): () => Promise<void> {
  const pollIntervalMs = options.pollIntervalMs ?? 5_000;
  const transport = createMailTransport(app.config.mail);
  const log = app.log.child({ component: 'mail' });
  const context: WorkerContext = { db: app.database.db, keys: mailQueueKeys(app.config), transport, log, now: options.now ?? (() => new Date()) };
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

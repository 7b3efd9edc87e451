// Emails the download link of a ready archive: a fresh token each time, armed on the backup host, sent at once, never stored.
import type { ArchiveJobContext } from '../context.js';
import { formatBytes, formatUtc } from '../format.js';
import type { FastifyBaseLogger } from 'fastify';
import type { Kysely } from 'kysely';
import { recordAudit } from '../users/audit.js';
import { addToRequestLog } from '../users/request-log.js';
import { startLoop } from '../background-loop.js';
import { BackupHostError, BackupHostRefused, type BackupHost } from '../backup-host/index.js';
import type { Database, Db } from '../db/database.js';
import { MailNotSent, sendMailNow } from '../mail/mail.service.js';
import { retryDelayMs } from '../mail/mail-policy.js';
import { hashToken, newToken } from '../protocol/index.js';
import { claimDue, type ArchiveRequest } from './archive-request.repository.js';

/** Same patience as the mail queue: about 4 hours of retries, waits doubling from 1 minute to 1 hour. */
export const LINK_MAIL_MAX_ATTEMPTS = 10;
const MAX_ERROR_LENGTH = 500;

export type NotifyOutcome = 'sent' | 'retry' | 'gave-up' | 'skipped';

export interface LinkMailerOptions {
  now?: () => Date;
  /** One host for every request, instead of each request's own fleet host (tests wrap it). */
  host?: BackupHost;
  idleMs?: number;
}

interface MailerContext {
  ctx: ArchiveJobContext;
  db: Kysely<Database>;
  /** The fleet host whose emails this loop sends; undefined: every request's (a test's single host). */
  hostName: string | undefined;
  /** The client of a request's fleet host; throws a BackupHostError when that host is gone from the fleet. */
  host: (name: string) => BackupHost;
  log: FastifyBaseLogger;
  now: () => Date;
  publicUrl: string;
}

/** The email's link: the portal's download page for this request, the token in the query (moved into a cookie at once). */
export function downloadPageLink(publicUrl: string, requestId: string, token: string): string {
  return `${publicUrl}/downloads/${requestId}?t=${token}`;
}

/** A failure reason fit to store and log: one line, bounded, and never the token. */
function scrub(reason: string, token: string): string {
  const clean = reason.split(token).join('[token]').replace(/\s+/g, ' ').trim();
  return clean.length > MAX_ERROR_LENGTH ? `${clean.slice(0, MAX_ERROR_LENGTH)}…` : clean;
}

/**
 * How long a claimed email is left alone: the backup host call and the SMTP delivery each end within
 * a minute, so past this the worker that claimed it is gone and another may try again.
 */
export const LINK_MAIL_LEASE_MS = 3 * 60_000;

type Claim = { kind: 'skipped' } | { kind: 'claimed'; request: ArchiveRequest & { archiveId: string }; email: string; attempts: number };

/**
 * Claims the request whose email is due longest (FOR UPDATE SKIP LOCKED) in a short transaction
 * that counts the attempt and leases the row: no lock or transaction is held across the backup
 * host or the SMTP call, and two instances never mail the same request at once.
 */
async function claimNext(context: MailerContext, now: Date): Promise<Claim | null> {
  return context.db.transaction().execute(async (trx) => {
    const request = await claimDue(trx, 'notify_due_at', now, undefined, context.hostName);
    if (request === null) return null;
    const owner = await trx.selectFrom('users').select(['email', 'status']).where('id', '=', request.userId).executeTakeFirst();
    if (request.state !== 'ready' || request.archiveId === null || owner === undefined || owner.status !== 'active') {
      await trx.updateTable('archive_requests').set({ notify_due_at: null }).where('id', '=', request.id).execute();
      context.log.info({ archiveRequestId: request.id, state: request.state }, 'link email no longer due');
      return { kind: 'skipped' as const };
    }
    const attempts = request.notifyAttempts + 1;
    await trx
      .updateTable('archive_requests')
      .set({ notify_due_at: new Date(now.getTime() + LINK_MAIL_LEASE_MS), notify_attempts: attempts })
      .where('id', '=', request.id)
      .execute();
    return { kind: 'claimed' as const, request: { ...request, archiveId: request.archiveId }, email: owner.email, attempts };
  });
}

/**
 * One due link email: claim (committed), arm a fresh token on the backup host and send it, then
 * record the outcome at once in a second short transaction. The token exists only in this
 * function's memory: the backup host gets its hash, the customer gets the email, nothing else.
 * Only a crash between the relay's answer and that record can send the email twice; the older
 * email's link then says that a newer email replaced it.
 */
async function notifyNext(context: MailerContext): Promise<NotifyOutcome | null> {
  const now = context.now();
  const claim = await claimNext(context, now);
  if (claim === null) return null;
  if (claim.kind === 'skipped') return 'skipped';
  const { request, email, attempts } = claim;
  const log = context.log.child({ archiveRequestId: request.id });
  // Each record applies only while this worker's claim stands (no other attempt was counted since).
  const ours = (trx: Db) => trx.updateTable('archive_requests').where('id', '=', request.id).where('notify_attempts', '=', attempts);
  const token = newToken();
  try {
    // Armed before sending: once this succeeds every earlier email's link stops working.
    await context
      .host(request.backupHost)
      .armArchive({ customer: request.customer, archiveId: request.archiveId, tokenHash: hashToken(token) });
    await sendMailNow(context.ctx, {
      to: email,
      template: 'archive-ready',
      data: {
        link: downloadPageLink(context.publicUrl, request.id, token),
        snapshot: request.snapshot,
        size: request.sizeBytes === null ? 'unknown' : formatBytes(request.sizeBytes),
        sizeBytes: request.sizeBytes,
        sha256: request.sha256,
        expiresAt: request.expiresAt === null ? null : formatUtc(request.expiresAt),
      },
    });
  } catch (error) {
    const refused = error instanceof BackupHostRefused;
    // Anything else (a template fault) is recorded by name only: its message might quote the data, link included.
    const described =
      error instanceof MailNotSent
        ? `mail: ${error.reason}`
        : error instanceof BackupHostError
          ? `backup host: ${error.message}`
          : `internal: ${(error as Error).name}`;
    const reason = scrub(described, token);
    // A refused arm (downloaded, expired, cancelled meanwhile) or a recipient the server refuses will not change by waiting.
    const permanent = refused || (error instanceof MailNotSent && error.permanent);
    const logFailure = (retrying: boolean) =>
      addToRequestLog(context.db, {
        at: now,
        userId: request.userId,
        kind: 'link',
        event: 'emailed',
        outcome: 'failure',
        detail: { request: request.id, attempts, reason, retrying },
      });
    if (permanent || attempts >= LINK_MAIL_MAX_ATTEMPTS) {
      await ours(context.db).set({ notify_due_at: null, last_notify_error: reason }).execute();
      await logFailure(false);
      log.error({ attempts, reason }, 'archive link email given up');
      return 'gave-up';
    }
    const nextAttemptAt = new Date(now.getTime() + retryDelayMs(attempts));
    await ours(context.db).set({ notify_due_at: nextAttemptAt, last_notify_error: reason }).execute();
    await logFailure(true);
    log.warn({ attempts, nextAttemptAt, reason }, 'archive link email not sent; will retry with a new link');
    return 'retry';
  }
  const sentAt = context.now();
  await context.db.transaction().execute(async (trx) => {
    await ours(trx).set({ notify_due_at: null, notified_at: sentAt, last_notify_error: null }).execute();
    await recordAudit(trx, {
      actor: 'system',
      action: 'archive.link_sent',
      subject: request.userId,
      detail: { requestId: request.id, attempts },
    });
  });
  log.info({ attempts }, 'archive link email sent');
  return 'sent';
}

/** One context per fleet host, so one host's slow calls hold up only its own customers' emails. */
function contextsFor(ctx: ArchiveJobContext, options: LinkMailerOptions): MailerContext[] {
  const only = options.host;
  const hosts: (string | undefined)[] = only === undefined || ctx.backupHosts.names.length > 0 ? [...ctx.backupHosts.names] : [undefined];
  return hosts.map((hostName) => ({
    ctx,
    db: ctx.database.db,
    hostName,
    host: only === undefined ? (name) => ctx.backupHosts.use(name) : () => only,
    log: ctx.log.child({ component: 'link-mailer', ...(hostName === undefined ? {} : { host: hostName }) }),
    now: options.now ?? (() => ctx.clock.now()),
    publicUrl: ctx.config.publicUrl.replace(/\/+$/, ''),
  }));
}

/** Sends every link email due now, host by host, one after another, and says what happened to each. */
export async function sendDueLinks(ctx: ArchiveJobContext, options: LinkMailerOptions = {}): Promise<NotifyOutcome[]> {
  const outcomes: NotifyOutcome[] = [];
  for (const context of contextsFor(ctx, options)) {
    for (let outcome = await notifyNext(context); outcome !== null; outcome = await notifyNext(context)) outcomes.push(outcome);
  }
  return outcomes;
}

/** Runs until stopped: one loop per fleet host, each looking for due link emails every idleMs (default 2 s). Returns the stopper. */
export function startLinkMailer(ctx: ArchiveJobContext, options: LinkMailerOptions = {}): () => Promise<void> {
  const idleMs = options.idleMs ?? 2_000;
  const stops = contextsFor(ctx, options).map((context) =>
    startLoop(async () => {
      try {
        if ((await notifyNext(context)) !== null) return 0;
      } catch (error) {
        context.log.error({ reason: (error as Error).message }, 'link mailer could not reach the database; trying again later');
      }
      return idleMs;
    }),
  );
  return async () => {
    await Promise.all(stops.map((stop) => stop()));
  };
}

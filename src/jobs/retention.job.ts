// The scheduled purge of IP addresses (and unmatched typed addresses) older than the retention period,
// and of every other record that has outlived its purpose: expired sessions, remember-me logins, wrong-code rows.
import { liveSession } from '../users/session.store.js';
import { deleteOldRateLimitWindows } from '../http/rate-limit-store.js';
import { purgeOldAudit } from '../users/audit.js';
import type { JobContext } from '../context.js';
import { startLoop } from '../background-loop.js';
import { sql, type Kysely } from 'kysely';
import type { Clock } from '../clock.js';
import type { Database } from '../db/database.js';
import { purgeOldTwoFactorFailures } from '../two-factor/two-factor.regulation.js';
import { deleteExpiredRememberLogins, forgetRememberLoginIps } from '../auth/remember-me.service.js';

export interface PurgeReport {
  signInAttempts: number;
  sessions: number;
  blocks: number;
  /** Audit rows removed; none when the chain is already broken there (`archway audit verify` says where). */
  auditLog: number | 'kept: the chain is broken';
  archiveRequests: number;
  backupHostEvents: number;
  requestLog: number;
}

/**
 * Forgets every IP address recorded before `now - retentionDays`: sign-in attempts keep their time
 * and outcome but lose the address (and, when they matched no account, the address typed, which may
 * be someone's mistyped email); sessions that old are long expired and go whole; ended IP blocks go;
 * audit entries that old go whole, from the start of the chain; archive requests and the backup host's copied events lose theirs.
 */
export async function purgeOldIps(db: Kysely<Database>, clock: Clock, retentionDays: number): Promise<PurgeReport> {
  const cutoff = new Date(clock.now().getTime() - retentionDays * 86_400_000);
  return db.transaction().execute(async (trx) => {
    const attempts = await trx
      .updateTable('sign_in_attempts')
      .set((eb) => ({
        ip: null,
        email_tried: eb
          .case()
          .when('user_id', 'is', null)
          .then(sql<string | null>`null`)
          .else(eb.ref('email_tried'))
          .end(),
      }))
      .where('at', '<', cutoff)
      .where((eb) => eb.or([eb('ip', 'is not', null), eb.and([eb('user_id', 'is', null), eb('email_tried', 'is not', null)])]))
      .executeTakeFirst();
    const sessions = await trx
      .deleteFrom('sessions')
      .where((eb) => eb.or([eb('last_seen_at', '<', cutoff), eb('expires_at', '<', cutoff)]))
      .executeTakeFirst();
    const blocks = await trx.deleteFrom('blocks').where('scope', '=', 'ip').where('until', '<', cutoff).executeTakeFirst();
    // Audit rows are never rewritten (the portal's role cannot): whole old rows go from the chain's start.
    const audit = await purgeOldAudit(trx, cutoff);
    const requests = await trx
      .updateTable('archive_requests')
      .set({ requested_ip: null })
      .where('requested_at', '<', cutoff)
      .where('requested_ip', 'is not', null)
      .executeTakeFirst();
    const downloads = await trx
      .updateTable('archive_requests')
      .set({ downloaded_ip: null })
      .where('finished_at', '<', cutoff)
      .where('downloaded_ip', 'is not', null)
      .executeTakeFirst();
    // The log keeps what happened; the address, and an unknown address's fingerprint, go.
    const log = await trx
      .updateTable('request_log')
      .set({ ip: null, detail: sql<string>`detail - 'address'` })
      .where('at', '<', cutoff)
      .where(sql<boolean>`(ip is not null or detail ? 'address')`)
      .executeTakeFirst();
    // By the event's own time on the backup host: that is when the address was seen.
    const events = await trx
      .updateTable('backup_host_events')
      .set({ ip: null })
      .where('at', '<', cutoff)
      .where('ip', 'is not', null)
      .executeTakeFirst();
    return {
      signInAttempts: Number(attempts.numUpdatedRows),
      sessions: Number(sessions.numDeletedRows),
      blocks: Number(blocks.numDeletedRows),
      auditLog: audit,
      archiveRequests: Number(requests.numUpdatedRows) + Number(downloads.numUpdatedRows),
      backupHostEvents: Number(events.numUpdatedRows),
      requestLog: Number(log.numUpdatedRows),
    };
  });
}

/** Expired sessions are deleted when next presented; this removes the ones never presented again. */
export async function deleteExpiredSessions(db: Kysely<Database>, clock: Clock, idleMinutes: number): Promise<number> {
  const now = clock.now();
  const result = await db
    .deleteFrom('sessions')
    .where((eb) => eb.not(liveSession(now, idleMinutes)(eb)))
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}

/**
 * Runs the purge at start and then every `intervalMs` (hourly by default: an address is kept at most
 * the retention period plus an hour). Several instances may run it at once; the updates are idempotent.
 * Returns a stopper.
 */
export function startIpRetentionJob(ctx: JobContext, intervalMs = 3_600_000): () => Promise<void> {
  return startLoop(async () => {
    try {
      const { db } = ctx.database;
      const now = ctx.clock.now();
      const retentionDays = ctx.config.auth.ipRetentionDays;
      const purged = await purgeOldIps(db, ctx.clock, retentionDays);
      const expired = await deleteExpiredSessions(db, ctx.clock, ctx.config.auth.sessionIdleMinutes);
      const twoFactorFailures = await purgeOldTwoFactorFailures(db, now, retentionDays);
      const rememberLogins = await deleteExpiredRememberLogins(db, now);
      const rateLimitWindows = await deleteOldRateLimitWindows(db, now);
      // A remember-me login lives 5 days; with a shorter IP retention its address goes earlier.
      await forgetRememberLoginIps(db, new Date(now.getTime() - retentionDays * 86_400_000));
      ctx.log.info({ ...purged, expiredSessions: expired, twoFactorFailures, rememberLogins, rateLimitWindows }, 'IP retention purge done');
      if (typeof purged.auditLog === 'string')
        ctx.log.error('the audit trail has rows missing among those old enough to purge; kept them all: run archway audit verify');
    } catch (error) {
      ctx.log.error({ err: error }, 'IP retention purge failed; it runs again at the next interval');
    }
    return intervalMs;
  });
}

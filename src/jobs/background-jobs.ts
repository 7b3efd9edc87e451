// Every background job of `archway serve`, started and stopped in one place, all on the shared loop.
import type { ArchiveJobContext } from '../context.js';
import { startArchivePoller } from '../archives/archive-poller.js';
import { startEventSync } from '../archives/event-sync.js';
import { startLinkMailer } from '../archives/link-mailer.js';
import { startMailWorker } from '../mail/mail.worker.js';
import { startIpRetentionJob } from './retention.job.js';

export interface BackgroundJobOptions {
  /** How often the backup host's events are read; first look's local dispatcher answers in milliseconds. */
  eventSyncIntervalMs?: number;
}

/**
 * Starts the mail worker, the hourly retention purge and, where there is a backup host to ask, the
 * archive poller, the link mailer and the event sync. The stopper resolves once every job has
 * finished the work in hand, so the database pool is closed only after it.
 */
export function startBackgroundJobs(ctx: ArchiveJobContext, options: BackgroundJobOptions = {}): () => Promise<void> {
  const stops = [startMailWorker(ctx), startIpRetentionJob(ctx)];
  if (ctx.backupHosts.names.length > 0) {
    stops.push(startArchivePoller(ctx), startLinkMailer(ctx), startEventSync(ctx, { intervalMs: options.eventSyncIntervalMs }));
  }
  return async () => {
    await Promise.all(stops.map((stop) => stop()));
  };
}

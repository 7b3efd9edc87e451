// The gauges /metrics reads from the database at each scrape: bounded in time, at most one read at once.
import { Gauge, type Registry } from 'prom-client';
import type { ArchiveRequestState } from '../archives/archives.tables.js';
import { DEFAULT_HOST } from '../archives/event.repository.js';
import type { OperationalCounts } from './metrics.repository.js';

/** A scrape waits this long for the database, then answers with archway_database_up 0. */
export const SCRAPE_DATABASE_TIMEOUT_MS = 2_000;

const ARCHIVE_STATES: readonly ArchiveRequestState[] = ['requested', 'building', 'ready', 'failed', 'cancelled', 'downloaded', 'expired'];

export interface DatabaseGaugeSource {
  read(): Promise<OperationalCounts>;
  now(): Date;
  timeoutMs?: number;
}

/**
 * Registers the database-backed gauges. Every gauge's collect() joins the same read, so a scrape
 * costs one transaction. A read still running (a silent partition) is joined, never doubled, so
 * scrapes cannot fill the pool; a scrape that waits longer than the timeout reports the database
 * down and leaves these gauges without a value (NaN where a gauge has no labels).
 */
export function registerDatabaseGauges(registry: Registry, source: DatabaseGaugeSource): void {
  const timeoutMs = source.timeoutMs ?? SCRAPE_DATABASE_TIMEOUT_MS;
  let running: Promise<OperationalCounts | null> | null = null;
  let scrape: Promise<OperationalCounts | null> | null = null;

  const readOnce = (): Promise<OperationalCounts | null> => {
    running ??= source
      .read()
      .catch(() => null)
      .finally(() => {
        running = null;
      });
    return running;
  };
  // The gauges of one scrape are collected together; they share one wait.
  const counts = (): Promise<OperationalCounts | null> => {
    if (scrape !== null) return scrape;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), timeoutMs)));
    scrape = Promise.race([readOnce(), timeout]).finally(() => {
      clearTimeout(timer);
      scrape = null;
    });
    return scrape;
  };

  const registers = [registry];
  new Gauge({
    name: 'archway_database_up',
    help: 'Whether the database answered the scrape-time read within 2 s (1) or not (0).',
    registers,
    async collect() {
      this.set((await counts()) === null ? 0 : 1);
    },
  });
  new Gauge({
    name: 'archway_active_blocks',
    help: 'Brute-force blocks in force now, by kind (sign_in, second_step) and scope (ip, user).',
    labelNames: ['kind', 'scope'] as const,
    registers,
    async collect() {
      const c = await counts();
      this.reset();
      if (c === null) return;
      for (const kind of ['sign_in', 'second_step'] as const) for (const scope of ['ip', 'user'] as const) this.set({ kind, scope }, 0);
      for (const b of c.activeBlocks) this.set({ kind: b.kind, scope: b.scope }, b.count);
    },
  });
  new Gauge({
    name: 'archway_archive_requests',
    help: 'Archive requests by state.',
    labelNames: ['state'] as const,
    registers,
    async collect() {
      const c = await counts();
      this.reset();
      if (c === null) return;
      for (const state of ARCHIVE_STATES) this.set({ state }, 0);
      for (const r of c.archiveRequests) this.set({ state: r.state }, r.count);
    },
  });
  new Gauge({
    name: 'archway_archive_builds_in_progress',
    help: 'Archives the backup host is building now, by backup host.',
    labelNames: ['host'] as const,
    registers,
    async collect() {
      const c = await counts();
      this.reset();
      if (c === null) return;
      // The portal has one backup host (archive requests carry no host yet), named like the event sync's.
      this.set({ host: DEFAULT_HOST }, c.archiveRequests.find((r) => r.state === 'building')?.count ?? 0);
    },
  });
  new Gauge({
    name: 'archway_mail_queue_depth',
    help: 'Messages waiting in the mail queue to be sent (first tries and retries).',
    registers,
    async collect() {
      const c = await counts();
      this.set(c === null ? NaN : c.mailQueue.pending);
    },
  });
  new Gauge({
    name: 'archway_mail_queue_oldest_age_seconds',
    help: 'Age of the oldest message waiting in the mail queue; 0 when the queue is empty.',
    registers,
    async collect() {
      const c = await counts();
      const oldest = c?.mailQueue.oldestCreatedAt;
      this.set(c === null ? NaN : ageSeconds(source.now(), oldest ?? null));
    },
  });
  new Gauge({
    name: 'archway_event_sync_lag_seconds',
    help: "Seconds since the backup host's events were last copied in full, by backup host.",
    labelNames: ['host'] as const,
    registers,
    async collect() {
      const c = await counts();
      this.reset();
      for (const h of c?.hosts ?? []) if (h.syncedAt !== null) this.set({ host: h.host }, ageSeconds(source.now(), h.syncedAt));
    },
  });
  new Gauge({
    name: 'archway_backup_host_up',
    help: 'Whether the newest event sync reached the backup host and copied its events (1) or failed (0), by backup host.',
    labelNames: ['host'] as const,
    registers,
    async collect() {
      const c = await counts();
      this.reset();
      for (const h of c?.hosts ?? []) this.set({ host: h.host }, h.syncedAt !== null && !h.lastSyncFailed ? 1 : 0);
    },
  });
}

function ageSeconds(now: Date, since: Date | null): number {
  return since === null ? 0 : Math.max(0, (now.getTime() - since.getTime()) / 1000);
}

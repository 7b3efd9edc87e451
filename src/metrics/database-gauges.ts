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

  new Gauge({
    name: 'archway_database_up',
    help: 'Whether the database answered the scrape-time read within 2 s (1) or not (0).',
    registers: [registry],
    async collect() {
      this.set((await counts()) === null ? 0 : 1);
    },
  });
  for (const reading of databaseReadings(source.now)) {
    new Gauge({
      name: reading.name,
      help: reading.help,
      labelNames: reading.labelNames ?? [],
      registers: [registry],
      async collect() {
        const c = await counts();
        this.reset();
        // A gauge without labels always shows a value: NaN says "unknown" rather than a false 0.
        if (c === null && reading.labelNames === undefined) this.set(NaN);
        for (const [labels, value] of c === null ? [] : reading.samples(c)) this.set(labels, value);
      },
    });
  }
}

interface Reading {
  name: string;
  help: string;
  labelNames?: string[];
  samples(counts: OperationalCounts): Array<[Record<string, string>, number]>;
}

function databaseReadings(now: () => Date): Reading[] {
  return [
    {
      name: 'archway_active_blocks',
      help: 'Brute-force blocks in force now, by kind (sign_in, second_step) and scope (ip, user).',
      labelNames: ['kind', 'scope'],
      samples: (c) =>
        (['sign_in', 'second_step'] as const).flatMap((kind) =>
          (['ip', 'user'] as const).map((scope): [Record<string, string>, number] => [
            { kind, scope },
            c.activeBlocks.find((b) => b.kind === kind && b.scope === scope)?.count ?? 0,
          ]),
        ),
    },
    {
      name: 'archway_archive_requests',
      help: 'Archive requests by state.',
      labelNames: ['state'],
      samples: (c) => ARCHIVE_STATES.map((state) => [{ state }, c.archiveRequests.find((r) => r.state === state)?.count ?? 0]),
    },
    {
      name: 'archway_archive_builds_in_progress',
      help: 'Archives the backup host is building now, by backup host.',
      labelNames: ['host'],
      // The portal has one backup host (archive requests carry no host yet), named like the event sync's.
      samples: (c) => [[{ host: DEFAULT_HOST }, c.archiveRequests.find((r) => r.state === 'building')?.count ?? 0]],
    },
    {
      name: 'archway_mail_queue_depth',
      help: 'Messages waiting in the mail queue to be sent (first tries and retries).',
      samples: (c) => [[{}, c.mailQueue.pending]],
    },
    {
      name: 'archway_mail_queue_oldest_age_seconds',
      help: 'Age of the oldest message waiting in the mail queue; 0 when the queue is empty.',
      samples: (c) => [[{}, ageSeconds(now(), c.mailQueue.oldestCreatedAt)]],
    },
    {
      name: 'archway_event_sync_lag_seconds',
      help: "Seconds since the backup host's events were last copied in full, by backup host.",
      labelNames: ['host'],
      samples: (c) => c.hosts.flatMap((h) => (h.syncedAt === null ? [] : [[{ host: h.host }, ageSeconds(now(), h.syncedAt)]])),
    },
    {
      name: 'archway_backup_host_up',
      help: 'Whether the newest event sync reached the backup host and copied its events (1) or failed (0), by backup host.',
      labelNames: ['host'],
      samples: (c) => c.hosts.map((h) => [{ host: h.host }, h.syncedAt !== null && !h.lastSyncFailed ? 1 : 0]),
    },
  ];
}

function ageSeconds(now: Date, since: Date | null): number {
  return since === null ? 0 : Math.max(0, (now.getTime() - since.getTime()) / 1000);
}

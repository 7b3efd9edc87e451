// The portal's Prometheus instruments in one per-app registry: what requests, sign-ins and the hash queue record.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Kysely } from 'kysely';
import type { Clock } from '../clock.js';
import type { Database } from '../db/database.js';
import type { SignInOutcome } from '../users/users.tables.js';
import { registerDatabaseGauges, SCRAPE_DATABASE_TIMEOUT_MS } from './database-gauges.js';
import { readOperationalCounts } from './metrics.repository.js';

export type SecondStepOutcome = 'success' | 'wrong' | 'replayed' | 'malformed' | 'blocked' | 'not_enrolled';

/** The label of a request no route matched: its URL may carry anything, so it is never a label. */
export const UNMATCHED_ROUTE = '(unmatched)';

export interface MetricsDeps {
  db: Kysely<Database>;
  clock: Clock;
  /** Password hashes waiting for a slot (src/users/semaphore.ts). */
  hashQueueLength: () => number;
  /** Add Node's process metrics (memory, CPU, event-loop delay): only when /metrics is served at all. */
  processMetrics: boolean;
  /** The scrape-time database read's bound; tests shorten it. */
  databaseTimeoutMs?: number;
}

export class Metrics {
  /** Per app, not prom-client's global one, so several apps in one process (tests) keep apart. */
  readonly registry = new Registry();
  private readonly requests: Counter<'method' | 'route' | 'status'>;
  private readonly latency: Histogram<'method' | 'route'>;
  private readonly signIns: Counter<'outcome'>;
  private readonly secondSteps: Counter<'outcome'>;

  constructor(deps: MetricsDeps) {
    const registers = [this.registry];
    this.requests = new Counter({
      name: 'archway_http_requests_total',
      help: 'HTTP requests answered, by method, route pattern and status code.',
      labelNames: ['method', 'route', 'status'],
      registers,
    });
    this.latency = new Histogram({
      name: 'archway_http_request_duration_seconds',
      help: 'Time from receiving a request to sending its answer, by method and route pattern.',
      labelNames: ['method', 'route'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.signIns = new Counter({
      name: 'archway_sign_in_attempts_total',
      help: 'Password sign-in attempts by outcome: success, failure (wrong or unknown), blocked, refused (inactive account).',
      labelNames: ['outcome'],
      registers,
    });
    this.secondSteps = new Counter({
      name: 'archway_second_step_attempts_total',
      help: 'Second sign-in step attempts by outcome: success, wrong, replayed, malformed, blocked, not_enrolled.',
      labelNames: ['outcome'],
      registers,
    });
    new Gauge({
      name: 'archway_password_hash_queue_length',
      help: 'Password hashes waiting for a free hashing slot (ARCHWAY_HASH_CONCURRENCY).',
      registers,
      collect() {
        this.set(deps.hashQueueLength());
      },
    });
    registerDatabaseGauges(this.registry, {
      read: () => readOperationalCounts(deps.db, deps.clock.now(), deps.databaseTimeoutMs ?? SCRAPE_DATABASE_TIMEOUT_MS),
      now: () => deps.clock.now(),
      timeoutMs: deps.databaseTimeoutMs,
    });
    if (deps.processMetrics) collectDefaultMetrics({ register: this.registry });
  }

  recordRequest(method: string, route: string, status: number, seconds: number): void {
    this.requests.inc({ method, route, status: String(status) });
    this.latency.observe({ method, route }, seconds);
  }

  recordSignIn(outcome: SignInOutcome): void {
    this.signIns.inc({ outcome });
  }

  recordSecondStep(outcome: SecondStepOutcome): void {
    this.secondSteps.inc({ outcome });
  }

  /** The Prometheus text exposition of every instrument, database gauges read now. */
  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}

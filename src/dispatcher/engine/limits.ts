// Per-customer quotas and host-wide rates for archive.create and link.issue, held where a stolen portal key cannot change them.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import type { CheckFinding, RefusalReason } from '../../protocol/index.js';
import { nowSeconds } from './clock.js';
import type { DispatcherConfig } from './config.js';
import { fail } from './failure.js';
import { readJsonOrNull, writeJsonAtomic } from './fsutil.js';
import { paths } from './layout.js';
import { withMutex } from './lock.js';

export type LimitedAction = 'archive.create' | 'link.issue';

interface Rule {
  customerWindowSeconds: number;
  hostWindowSeconds: number;
  perCustomer: (cfg: DispatcherConfig) => number;
  hostWide: (cfg: DispatcherConfig) => number;
  /** Why a call is refused when this customer's own limit is reached. */
  customerReason: RefusalReason;
}

const HOUR = 3600;
export const RULES: Readonly<Record<LimitedAction, Rule>> = {
  'archive.create': {
    customerWindowSeconds: 24 * HOUR,
    hostWindowSeconds: HOUR,
    perCustomer: (c) => c.archiveCreatePerCustomerPerDay,
    hostWide: (c) => c.archiveCreatePerHour,
    customerReason: 'quota_builds',
  },
  'link.issue': {
    customerWindowSeconds: HOUR,
    hostWindowSeconds: HOUR,
    perCustomer: (c) => c.linkIssuePerCustomerPerHour,
    hostWide: (c) => c.linkIssuePerHour,
    customerReason: 'quota_links',
  },
};

/** Admitted calls, oldest first: [unix seconds, customer]. Only the longest window's worth is kept. */
type Ledger = Array<[number, string]>;

export function readLedger(cfg: DispatcherConfig, action: LimitedAction): Ledger {
  const v = readJsonOrNull<unknown>(paths.rateLedger(cfg, action));
  return Array.isArray(v) ? (v.filter((e) => Array.isArray(e) && typeof e[0] === 'number' && typeof e[1] === 'string') as Ledger) : [];
}

/** Counts of admitted calls in each rule's window: this customer's, and the whole host's. */
export function countRecent(ledger: Ledger, action: LimitedAction, now: number, customer?: string): { customer: number; host: number } {
  const rule = RULES[action];
  let mine = 0;
  let host = 0;
  for (const [t, c] of ledger) {
    if (customer !== undefined && c === customer && t > now - rule.customerWindowSeconds) mine++;
    if (t > now - rule.hostWindowSeconds) host++;
  }
  return { customer: mine, host };
}

/**
 * Admits one call or refuses it: `quota` when this customer reached their limit, `busy` when the
 * host-wide rate is reached. Refusals are not counted, so a flood cannot extend its own block.
 */
export function admit(cfg: DispatcherConfig, action: LimitedAction, customer: string): void {
  const rule = RULES[action];
  withMutex(paths.ratesMutex(cfg), () => {
    const now = nowSeconds();
    const keepAfter = now - Math.max(rule.customerWindowSeconds, rule.hostWindowSeconds);
    const ledger = readLedger(cfg, action).filter(([t]) => t > keepAfter);
    const counts = countRecent(ledger, action, now, customer);
    const hostLimit = rule.hostWide(cfg);
    const customerLimit = rule.perCustomer(cfg);
    if (counts.host >= hostLimit) {
      fail('busy', `limit: ${action} host-wide rate ${hostLimit} per ${rule.hostWindowSeconds}s reached`);
    }
    if (counts.customer >= customerLimit) {
      fail(rule.customerReason, `limit: ${action} for ${customer} reached ${customerLimit} per ${rule.customerWindowSeconds}s`);
    }
    ledger.push([now, customer]);
    // Not fsynced: after a crash, forgetting the last few admissions only loosens a limit briefly.
    writeJsonAtomic(paths.rateLedger(cfg, action), ledger, 0o600, false);
  });
}

/** How much of a limit counts as unusual for `check`: a stolen key at work, or a limit set too low. */
const UNUSUAL_SHARE = 0.5;
/** check reads at most this much of the call log's end; a busy host writes less than this a day. */
const CALL_LOG_TAIL_BYTES = 8 << 20;

/** Findings for `check`: each limited action's recent rate against its limits, and refusals in the last day. */
export function rateFindings(cfg: DispatcherConfig): CheckFinding[] {
  const now = nowSeconds();
  const findings: CheckFinding[] = [];
  for (const action of Object.keys(RULES) as LimitedAction[]) {
    const rule = RULES[action];
    const ledger = readLedger(cfg, action);
    const host = countRecent(ledger, action, now).host;
    const perCustomer = new Map<string, number>();
    for (const [t, c] of ledger) if (t > now - rule.customerWindowSeconds) perCustomer.set(c, (perCustomer.get(c) ?? 0) + 1);
    const [busiest, most] = [...perCustomer].sort((a, b) => b[1] - a[1])[0] ?? ['nobody', 0];
    const ok = host < rule.hostWide(cfg) * UNUSUAL_SHARE && most < rule.perCustomer(cfg);
    findings.push({
      ok,
      what: `${action} rate`,
      detail: `${host} in the last ${rule.hostWindowSeconds / 3600} h (limit ${rule.hostWide(cfg)}, unusual from ${Math.ceil(rule.hostWide(cfg) * UNUSUAL_SHARE)}); busiest customer ${busiest} with ${most} in ${rule.customerWindowSeconds / 3600} h (limit ${rule.perCustomer(cfg)})`,
    });
  }
  const refusals = recentLimitRefusals(cfg, now - 86400);
  const summary = [...refusals].map(([k, n]) => `${k} ${n}`).join(', ');
  findings.push({
    ok: refusals.size === 0,
    what: 'limit refusals',
    detail: refusals.size === 0 ? 'none in the last 24 h' : `in the last 24 h: ${summary} (see the call log)`,
  });
  return findings;
}

/** "<action> <code>" -> count of quota/busy refusals in the call log since `since` (unix seconds). */
function recentLimitRefusals(cfg: DispatcherConfig, since: number): Map<string, number> {
  const out = new Map<string, number>();
  let text: string;
  try {
    const fd = openSync(paths.callLog(cfg), 'r');
    try {
      const size = fstatSync(fd).size;
      const start = Math.max(0, size - CALL_LOG_TAIL_BYTES);
      const buf = Buffer.alloc(size - start);
      readSync(fd, buf, 0, buf.length, start);
      text = buf.toString('utf8');
    } finally {
      closeSync(fd);
    }
  } catch {
    return out;
  }
  for (const line of text.split('\n')) {
    if (!line.includes('"outcome":"quota"') && !line.includes('"outcome":"busy"')) continue;
    try {
      const entry = JSON.parse(line) as { time?: string; action?: string; outcome?: string };
      if (Date.parse(entry.time ?? '') / 1000 >= since)
        out.set(`${entry.action} ${entry.outcome}`, (out.get(`${entry.action} ${entry.outcome}`) ?? 0) + 1);
    } catch {
      // a torn first line of the tail
    }
  }
  return out;
}

// One doctor check's outcome, the few ways to make one, and how a list of them is printed for people or machines.

/** pass and not-applicable count as healthy; fail and skipped (not checked because an earlier check failed) do not. */
export type CheckStatus = 'pass' | 'fail' | 'skipped' | 'not-applicable';

export interface CheckResult {
  /** Stable machine name, e.g. `database.migrations`. */
  id: string;
  /** What was checked, in words. */
  title: string;
  status: CheckStatus;
  /** What was found. */
  detail: string;
  /** What the operator does about a failure; null when nothing is to be done. */
  fix: string | null;
}

export const pass = (id: string, title: string, detail: string): CheckResult => ({ id, title, status: 'pass', detail, fix: null });
export const fail = (id: string, title: string, detail: string, fix: string): CheckResult => ({ id, title, status: 'fail', detail, fix });
export const skipped = (id: string, title: string, because: string): CheckResult => ({
  id,
  title,
  status: 'skipped',
  detail: `not checked: ${because}`,
  fix: null,
});
export const notApplicable = (id: string, title: string, why: string): CheckResult => ({
  id,
  title,
  status: 'not-applicable',
  detail: `does not apply: ${why}`,
  fix: null,
});

export function allHealthy(results: readonly CheckResult[]): boolean {
  return results.every((r) => r.status === 'pass' || r.status === 'not-applicable');
}

const MARK: Record<CheckStatus, string> = { pass: '✓', fail: '✗', skipped: '–', 'not-applicable': '–' };

/** One line per check, then one line of totals. */
export function formatText(results: readonly CheckResult[]): string {
  const lines = results.map(
    (r) => `${MARK[r.status]} ${r.title}: ${r.detail}${r.fix === null ? '' : `${/[.!?]$/.test(r.detail) ? '' : '.'} Fix: ${r.fix}`}`,
  );
  const count = (status: CheckStatus): number => results.filter((r) => r.status === status).length;
  const totals = [
    `${count('pass')} passed`,
    `${count('fail')} failed`,
    `${count('skipped')} not checked`,
    `${count('not-applicable')} do not apply`,
  ];
  lines.push(`${allHealthy(results) ? 'All is well' : 'Not ready'}: ${totals.filter((t) => !t.startsWith('0 ')).join(', ')}.`);
  return `${lines.join('\n')}\n`;
}

export function formatJson(mode: string | null, results: readonly CheckResult[]): string {
  return `${JSON.stringify({ ok: allHealthy(results), mode, checks: results }, null, 2)}\n`;
}

/** Removes every given secret (longest first, so a whole secret goes before a part of it) from a text. */
export function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of [...secrets].filter((s) => s.length >= 4).sort((a, b) => b.length - a.length))
    out = out.split(secret).join('[redacted]');
  return out;
}

/** An error's message and code in one line; the runner redacts secrets from it before printing. */
export function describeError(error: unknown): string {
  // Connecting to a name with several addresses fails with an AggregateError whose own message is empty.
  const first = error instanceof AggregateError && error.errors.length > 0 ? (error.errors[0] as unknown) : error;
  const { code, message } = first as { code?: unknown; message?: unknown };
  const text = typeof message === 'string' && message !== '' ? message : String(error);
  return typeof code === 'string' && !text.includes(code) ? `${text} (${code})` : text;
}

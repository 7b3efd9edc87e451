// Limits the backup host holds by itself, whatever the portal (or a stolen portal key) asks: ready archives, builds and links.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { installDispatcher, makeWorld, tokenHash, waitFor, type World } from './world.js';

const TOKEN = 'T'.repeat(43);

function worldWith(customers: string[], limits: Record<string, number>): World {
  const w = makeWorld(limits);
  for (const c of customers) {
    mkdirSync(join(w.backupRoot, c, 'daily.0'), { recursive: true });
    writeFileSync(join(w.backupRoot, c, 'daily.0', 'file.txt'), `data of ${c}\n`);
  }
  return w;
}

async function buildReady(w: World, customer: string, env: Record<string, string> = {}): Promise<string> {
  const r = w.run('archive.create', { customer, snapshot: 'daily.0' }, env);
  expect(r.answer).toMatchObject({ ok: true });
  const id = r.answer.result.archiveId as string;
  await waitFor('the archive to be ready', () => w.run('archive.status', { customer, archiveId: id }, env).answer.result.state === 'ready');
  return id;
}

/** The call log's lines, parsed: what the operator reads. */
function callLog(w: World): Array<{ action: string; outcome: string; detail: string }> {
  return readFileSync(join(w.stateDir, 'dispatcher.log'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
}

function check(w: World) {
  const r = spawnSync(installDispatcher(w), ['check'], {
    env: { PATH: process.env.PATH, ARCHWAY_DISPATCHER_CONFIG: w.configPath },
    encoding: 'utf8',
  });
  return {
    code: r.status,
    findings: JSON.parse(r.stdout).result.findings as Array<{ ok: boolean; what: string; detail: string }>,
    stderr: r.stderr,
  };
}

describe('ready archives per customer', () => {
  it('refuses another archive while the customer has as many ready as allowed, with a quota code and a log line', async () => {
    const w = worldWith(['example.org', 'other.net'], { maxReadyArchivesPerCustomer: 2 });
    await buildReady(w, 'example.org');
    await buildReady(w, 'example.org');
    const r = w.run('archive.create', { customer: 'example.org', snapshot: 'daily.0' });
    expect(r.code).toBe(1);
    expect(r.answer).toEqual({
      ok: false,
      error: {
        code: 'quota',
        reason: 'quota_ready',
        message: 'the customer has as many ready archives as allowed',
      },
    });
    expect(callLog(w).at(-1)).toMatchObject({
      action: 'archive.create',
      outcome: 'quota',
      detail: expect.stringContaining('limit: 2 ready archives for example.org, at most 2'),
    });
    // Only two archives exist, and another customer is not held back.
    expect(
      w.run('events.since', { after: 0 }).answer.result.events.filter((e: { type: string }) => e.type === 'archive.requested'),
    ).toHaveLength(2);
    await buildReady(w, 'other.net');
  });

  it('does not count archives past their retention', async () => {
    const w = worldWith(['example.org'], { maxReadyArchivesPerCustomer: 1, archiveRetentionDays: 1 });
    await buildReady(w, 'example.org');
    expect(w.run('archive.create', { customer: 'example.org', snapshot: 'daily.0' }).answer.error.code).toBe('quota');
    await buildReady(w, 'example.org', { ARCHWAY_DISPATCHER_NOW_OFFSET: String(2 * 86400) });
  });
});

describe('archive.create rates', () => {
  it('bounds builds per customer per day and for the whole host per hour, refusing with quota and busy', async () => {
    const w = worldWith(['a.example', 'b.example', 'c.example'], {
      maxReadyArchivesPerCustomer: 10,
      archiveCreatePerCustomerPerDay: 2,
      archiveCreatePerHour: 3,
    });
    await buildReady(w, 'a.example');
    await buildReady(w, 'a.example');
    const third = w.run('archive.create', { customer: 'a.example', snapshot: 'daily.0' });
    expect(third.answer).toEqual({
      ok: false,
      error: {
        code: 'quota',
        reason: 'quota_builds',
        message: 'the customer reached the archive.create limit per day',
      },
    });
    await buildReady(w, 'b.example');
    const busy = w.run('archive.create', { customer: 'c.example', snapshot: 'daily.0' });
    expect(busy.answer).toEqual({
      ok: false,
      error: { code: 'busy', reason: 'busy', message: 'the host-wide rate is reached' },
    });
    expect(
      callLog(w)
        .filter((l) => l.outcome === 'quota' || l.outcome === 'busy')
        .map((l) => [l.action, l.outcome]),
    ).toEqual([
      ['archive.create', 'quota'],
      ['archive.create', 'busy'],
    ]);
    // Two hours on, the host-wide rate has room again; a day on, the customer's own quota too.
    await buildReady(w, 'c.example', { ARCHWAY_DISPATCHER_NOW_OFFSET: String(2 * 3600) });
    expect(
      w.run('archive.create', { customer: 'a.example', snapshot: 'daily.0' }, { ARCHWAY_DISPATCHER_NOW_OFFSET: String(2 * 3600) }).answer
        .error.code,
    ).toBe('quota');
    await buildReady(w, 'a.example', { ARCHWAY_DISPATCHER_NOW_OFFSET: String(25 * 3600) });
  });
});

describe('link.issue rates', () => {
  it('bounds links per customer per hour and for the whole host, whatever the token', async () => {
    const w = worldWith(['a.example', 'b.example'], { linkIssuePerCustomerPerHour: 2, linkIssuePerHour: 3 });
    const a = await buildReady(w, 'a.example');
    const b = await buildReady(w, 'b.example');
    for (const [c, id] of [
      ['a.example', a],
      ['b.example', b],
    ] as const)
      w.run('archive.arm', { customer: c, archiveId: id, tokenHash: tokenHash(TOKEN) });
    const issue = (customer: string, archiveId: string, token = TOKEN) =>
      w.run('link.issue', { customer, archiveId, token, clientIp: '192.0.2.7' });
    expect(issue('a.example', a).code).toBe(0);
    expect(issue('a.example', a, 'W'.repeat(43)).answer.error.code).toBe('refused');
    expect(issue('a.example', a).answer).toEqual({
      ok: false,
      error: {
        code: 'quota',
        reason: 'quota_links',
        message: 'the customer reached the link.issue limit per hour',
      },
    });
    expect(issue('b.example', b).code).toBe(0);
    expect(issue('b.example', b).answer.error.code).toBe('busy');
    expect(
      callLog(w)
        .filter((l) => l.action === 'link.issue')
        .map((l) => l.outcome),
    ).toEqual(['done', 'refused', 'quota', 'done', 'busy']);
  });
});

describe('check', () => {
  it('passes with quiet rates and reports a rate near its limit and any refusal of the last day', async () => {
    const w = worldWith(['a.example', 'b.example'], { archiveCreatePerHour: 6, archiveCreatePerCustomerPerDay: 2 });
    writeFileSync(w.downloadLog, '');
    const quiet = check(w);
    expect(quiet.findings.filter((f) => !f.ok)).toEqual([]);
    expect(quiet.findings.find((f) => f.what === 'limit refusals')).toEqual({
      ok: true,
      what: 'limit refusals',
      detail: 'none in the last 24 h',
    });
    await buildReady(w, 'a.example');
    expect(check(w).findings.find((f) => f.what === 'archive.create rate')?.ok).toBe(true);
    await buildReady(w, 'b.example');
    await buildReady(w, 'a.example');
    expect(w.run('archive.create', { customer: 'a.example', snapshot: 'daily.0' }).answer.error.code).toBe('quota');
    const busy = check(w);
    expect(busy.code).toBe(1);
    expect(busy.findings.filter((f) => !f.ok)).toEqual([
      {
        ok: false,
        what: 'archive.create rate',
        detail: '3 in the last 1 h (limit 6, unusual from 3); busiest customer a.example with 2 in 24 h (limit 2)',
      },
      { ok: false, what: 'limit refusals', detail: 'in the last 24 h: archive.create quota 1 (see the call log)' },
    ]);
    expect(busy.stderr).toMatch(/^BAD {2}limit refusals: in the last 24 h: archive.create quota 1/m);
  });
});

describe('configuration', () => {
  it('refuses limits that are not positive whole numbers, naming each', () => {
    const w = makeWorld({ linkIssuePerHour: 0, maxReadyArchivesPerCustomer: 'many' });
    const r = w.run('ping', {});
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('linkIssuePerHour must be an integer from 1 to 1000000');
    expect(r.stderr).toContain('maxReadyArchivesPerCustomer must be an integer from 1 to 1000');
  });

  it('refuses a request cap below the 64 KiB that the portal sizes its batches to', () => {
    const r = makeWorld({ maxRequestBytes: 32768 }).run('ping', {});
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('maxRequestBytes must be an integer from 65536 to 1048576');
    expect(makeWorld({ maxRequestBytes: 131072 }).run('ping', {}).code).toBe(0);
  });
});

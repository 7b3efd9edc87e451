// archive.statuses: many archive.status answers in one call, each scoped to its own customer, and what it refuses.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { MAX_ARCHIVE_STATUSES } from '../../src/protocol/index.js';
import { makeWorld, manifest, waitFor, type World } from './world.js';

let w: World;
let before: ReturnType<typeof manifest>;
let mine = '';
let theirs = '';
const CUSTOMER = 'example.org';
const OTHER = 'other.net';
const badRequest = { ok: false, error: { code: 'refused', reason: 'bad_request', message: 'bad request: invalid field archives' } };
const hex = (n: number) => n.toString(16).padStart(32, '0');

async function readyArchive(customer: string): Promise<string> {
  const id = (w.run('archive.create', { customer, snapshot: 'daily.0' }).answer as { result: { archiveId: string } }).result.archiveId;
  await waitFor(
    `${customer}'s archive to be ready`,
    () => w.run('archive.status', { customer, archiveId: id }).answer.result?.state === 'ready',
  );
  return id;
}

beforeAll(async () => {
  w = makeWorld();
  for (const customer of [CUSTOMER, OTHER]) {
    mkdirSync(join(w.backupRoot, customer, 'daily.0'), { recursive: true });
    writeFileSync(join(w.backupRoot, customer, 'daily.0', 'a.txt'), `${customer}'s data`);
  }
  before = manifest(w.backupRoot);
  mine = await readyArchive(CUSTOMER);
  theirs = await readyArchive(OTHER);
});

describe('archive.statuses answers', () => {
  it('each archive exactly as archive.status does, in the order asked, with not_found for a missing id and for another customer’s', () => {
    const asked = [
      { customer: CUSTOMER, archiveId: theirs }, // another customer's id under my name
      { customer: CUSTOMER, archiveId: mine },
      { customer: CUSTOMER, archiveId: 'f'.repeat(32) },
    ];
    const r = w.run('archive.statuses', { archives: asked });
    expect(r.code).toBe(0);
    const one = (ref: { customer: string; archiveId: string }) => {
      const { answer } = w.run('archive.status', ref);
      return { archiveId: ref.archiveId, answer };
    };
    expect(r.answer).toEqual({ ok: true, result: { statuses: asked.map(one) } });
    const [leak, own] = (r.answer as { result: { statuses: Array<{ answer: unknown }> } }).result.statuses;
    // A forged id reads exactly like a missing one: no state, no size, no other customer's name.
    expect(leak?.answer).toEqual({
      ok: false,
      error: { code: 'not_found', reason: 'not_found', message: 'no such archive for this customer' },
    });
    expect(JSON.stringify(leak)).not.toContain(OTHER);
    expect(own?.answer).toMatchObject({ ok: true, result: { state: 'ready', percent: 100 } });
    // The same id under its owner's name answers.
    expect(w.run('archive.statuses', { archives: [{ customer: OTHER, archiveId: theirs }] }).answer).toMatchObject({
      ok: true,
      result: { statuses: [{ archiveId: theirs, answer: { ok: true, result: { state: 'ready' } } }] },
    });
  });

  it(`up to ${MAX_ARCHIVE_STATUSES} archives in one call`, () => {
    const asked = Array.from({ length: MAX_ARCHIVE_STATUSES }, (_, i) => ({ customer: CUSTOMER, archiveId: i === 7 ? mine : hex(i) }));
    const r = w.run('archive.statuses', { archives: asked });
    expect(r.code).toBe(0);
    const statuses = (r.answer as { result: { statuses: Array<{ archiveId: string; answer: { ok: boolean } }> } }).result.statuses;
    expect(statuses.map((s) => s.archiveId)).toEqual(asked.map((a) => a.archiveId));
    expect(statuses.filter((s) => s.answer.ok).map((s) => s.archiveId)).toEqual([mine]);
  });

  it('logs one line for the call with how many were asked, and a note for each refused entry', () => {
    const log = join(w.stateDir, 'dispatcher.log');
    const start = readFileSync(log, 'utf8').length;
    w.run(
      'archive.statuses',
      {
        archives: [
          { customer: CUSTOMER, archiveId: theirs },
          { customer: CUSTOMER, archiveId: mine },
        ],
      },
      {
        SSH_CONNECTION: '198.51.100.4 40000 192.0.2.1 22',
      },
    );
    const lines = readFileSync(log, 'utf8')
      .slice(start)
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, string>);
    expect(lines.map((l) => [l.action, l.outcome])).toEqual([
      ['archive.statuses', 'note'],
      ['archive.statuses', 'done'],
    ]);
    expect(lines[0]?.detail).toBe(`not_found: archive ${theirs} not found for ${CUSTOMER} (belongs to ${OTHER})`);
    expect(lines[1]).toMatchObject({ caller: '198.51.100.4', detail: 'archives=2' });
  });
});

describe('archive.statuses refuses', () => {
  const ref = (archiveId: string, customer = CUSTOMER) => ({ customer, archiveId });

  it.each([
    ['an empty list', []],
    [`${MAX_ARCHIVE_STATUSES + 1} archives`, Array.from({ length: MAX_ARCHIVE_STATUSES + 1 }, (_, i) => ref(hex(i)))],
    ['the same id twice', [ref('a'.repeat(32)), ref('a'.repeat(32))]],
    ['the same id twice under two customers', [ref('a'.repeat(32)), ref('a'.repeat(32), OTHER)]],
    ['a list that is an object', { 0: ref('a'.repeat(32)) }],
    ['a list that is a string', 'a'.repeat(32)],
    ['a list that is null', null],
    ['an entry that is a string', ['a'.repeat(32)]],
    ['an entry that is a list', [[CUSTOMER, 'a'.repeat(32)]]],
    ['an entry that is null', [null]],
    ['an id that is a number', [{ customer: CUSTOMER, archiveId: 1234 }]],
    ['an entry without a customer', [{ archiveId: 'a'.repeat(32) }]],
    ['an entry with an extra field', [{ ...ref('a'.repeat(32)), path: '/' }]],
    ['an entry with a __proto__ field', [JSON.parse(`{"customer":"${CUSTOMER}","archiveId":"${'a'.repeat(32)}","__proto__":{}}`)]],
    ['an id that climbs out', [ref(`../../${'a'.repeat(26)}`)]],
    ['an id with a slash', [ref(`${'a'.repeat(16)}/${'a'.repeat(15)}`)]],
    ['an id with a NUL', [ref(`${'a'.repeat(31)}\0`)]],
    ['an id in capitals', [ref('A'.repeat(32))]],
    ['an id one character too long', [ref('a'.repeat(33))]],
    ['a customer that climbs out', [ref('a'.repeat(32), '../other.net')]],
    ['a customer with a path', [ref('a'.repeat(32), 'example.org/daily.0')]],
    ['a valid entry after a bad one', [ref('bad'), ref(mine)]],
  ])('%s', (_what, archives) => {
    const r = w.run('archive.statuses', { archives });
    expect(r).toMatchObject({ code: 1, answer: badRequest });
  });

  it('a request with a field other than archives, or without it', () => {
    expect(w.run('archive.statuses', { archives: [ref(mine)], customer: CUSTOMER }).answer).toMatchObject({
      error: { reason: 'bad_request', message: 'bad request: unknown field "customer"' },
    });
    expect(w.run('archive.statuses', {}).answer).toMatchObject({
      error: { reason: 'bad_request', message: 'bad request: missing field archives' },
    });
  });

  it('a list over the request size cap, before reading it', () => {
    const long = `${'a'.repeat(60)}.${'b'.repeat(60)}.${'c'.repeat(60)}.${'d'.repeat(60)}.org`;
    const archives = Array.from({ length: MAX_ARCHIVE_STATUSES }, (_, i) => ref(hex(i), long));
    const r = w.run('archive.statuses', { archives });
    expect(r).toMatchObject({ code: 1, answer: { ok: false, error: { reason: 'bad_request', message: 'bad request: too large' } } });
  });

  it('leaves BACKUP_ROOT byte-identical', () => {
    expect(manifest(w.backupRoot)).toEqual(before);
  });
});

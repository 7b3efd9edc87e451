// What a caller who controls the command line and stdin can (not) make the dispatcher do.
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { REMOTE_ACTIONS, validateRequest } from '../../src/protocol/index.js';
import { makeWorld, manifest, type World } from './world.js';

let w: World;
let before: ReturnType<typeof manifest>;
// The dispatcher answers with a reason; the words a customer reads are the portal's (test/backup-host).
const refused = (reason: string, message: unknown = expect.any(String)) => ({ ok: false, error: { code: 'refused', reason, message } });

beforeAll(() => {
  w = makeWorld();
  mkdirSync(join(w.backupRoot, 'example.org', 'daily.0'), { recursive: true });
  writeFileSync(join(w.backupRoot, 'example.org', 'daily.0', 'a.txt'), 'hello');
  mkdirSync(join(w.backupRoot, 'other.net', 'daily.0'), { recursive: true });
  writeFileSync(join(w.backupRoot, 'other.net', 'daily.0', 'secret.txt'), 'other customer data');
  // A snapshot name that points at another customer's backup, and one that points at /etc.
  symlinkSync(join(w.backupRoot, 'other.net', 'daily.0'), join(w.backupRoot, 'example.org', 'stolen'));
  symlinkSync('/etc', join(w.backupRoot, 'example.org', 'etc'));
  before = manifest(w.backupRoot);
});

describe('the command line', () => {
  it('refuses an unknown action', () => {
    const r = w.run('rm');
    expect(r).toMatchObject({ code: 1, answer: refused('unknown_action') });
  });

  it.each([
    [['ping', 'extra']],
    [['ping;id']],
    [['ping\nbackups.list']],
    [['ping && id']],
    [['$(id)']],
    [['backups.list', '--customer=example.org']],
    [[]],
    [['PING']],
    [['__build', '0123456789abcdef0123456789abcdef', 'x']],
  ])('refuses %j: extra words, newlines and shell metacharacters never reach an action', (argv) => {
    const r = w.run(argv as string[]);
    expect(r.code).toBe(1);
    expect(r.answer).toEqual(refused('unknown_action'));
  });

  it('refuses the local-only actions when called over SSH', () => {
    for (const action of ['watch', 'sweep', 'check']) {
      const r = w.run(action, '', { SSH_CONNECTION: '192.0.2.10 50000 192.0.2.1 22' });
      expect(r.code, action).toBe(1);
      expect(r.answer).toEqual(refused('unknown_action'));
    }
  });

  it('does nothing for a builder start that archive.create did not make', () => {
    const before = readdirSync(w.archiveRoot);
    const r = w.run(['__build', '0123456789abcdef0123456789abcdef'], 'guessed-nonce');
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(readdirSync(w.archiveRoot)).toEqual(before);
  });

  it('refuses the builder word over SSH even with a valid-looking id', () => {
    const r = w.run(['__build', '0123456789abcdef0123456789abcdef'], '', { SSH_CONNECTION: '192.0.2.10 50000 192.0.2.1 22' });
    expect(r.answer).toEqual(refused('unknown_action'));
  });
});

describe('stdin', () => {
  it('refuses a request over the size cap', () => {
    const r = w.run('backups.list', `{"customer":"example.org","x":"${'a'.repeat(70_000)}"}`);
    expect(r).toMatchObject({ code: 1, answer: refused('bad_request', 'bad request: too large') });
  });

  it.each([
    ['', 'bad request: request is not one JSON object'],
    ['[]', 'bad request: request is not a JSON object'],
    ['"example.org"', 'bad request: request is not a JSON object'],
    ['{"customer":"example.org"}{"customer":"other.net"}', 'bad request: request is not one JSON object'],
    ['{"customer":"example.org"}\n{"customer":"other.net"}', 'bad request: request is not one JSON object'],
    ['{"customer":"example.org","path":"/"}', 'bad request: unknown field "path"'],
    ['{}', 'bad request: missing field customer'],
    ['{"customer":["example.org"]}', 'bad request: invalid field customer'],
  ])('refuses stdin %j', (stdin, message) => {
    const r = w.run('backups.list', stdin);
    expect(r.code).toBe(1);
    expect(r.answer).toEqual(refused('bad_request', message));
  });

  it.each(['..', '.', '../other.net', 'example.org/..', 'example.org\0', '-example.org', 'EXAMPLE.ORG', 'example.org/daily.0', '/etc'])(
    'refuses customer name %j',
    (customer) => {
      const r = w.run('backups.list', { customer });
      expect(r.answer).toEqual(refused('bad_request', 'bad request: invalid field customer'));
    },
  );

  it.each([
    '..',
    '.',
    '../../other.net/daily.0',
    'daily.0/../..',
    'daily.0\0',
    '-rf',
    '--checkpoint-action=exec=id',
    '/etc',
    'a b',
    'daily.0\n',
  ])('refuses snapshot name %j', (snapshot) => {
    const r = w.run('archive.create', { customer: 'example.org', snapshot });
    expect(r.answer).toEqual(refused('bad_request', 'bad request: invalid field snapshot'));
  });

  it('refuses a snapshot that is a symlink to another customer', () => {
    const r = w.run('archive.create', { customer: 'example.org', snapshot: 'stolen' });
    expect(r).toMatchObject({ code: 1, answer: refused('outside_backup') });
    expect(readdirSync(w.archiveRoot)).toEqual([]);
  });

  it('refuses a snapshot that is a symlink out of the backup root', () => {
    const r = w.run('archive.create', { customer: 'example.org', snapshot: 'etc' });
    expect(r).toMatchObject({ code: 1, answer: refused('outside_backup') });
    expect(readdirSync(w.archiveRoot)).toEqual([]);
  });

  it('does not list symlinked snapshots that leave the customer directory', () => {
    const r = w.run('backups.list', { customer: 'example.org' });
    expect(r.code).toBe(0);
    expect(r.answer.result.snapshots.map((s: { name: string }) => s.name)).toEqual(['daily.0']);
  });

  it('answers not_found for a customer without backups', () => {
    const r = w.run('backups.list', { customer: 'nobody.example' });
    expect(r).toMatchObject({
      code: 1,
      answer: { ok: false, error: { code: 'not_found', reason: 'no_backups' } },
    });
  });

  it('writes one log line per call, with the caller address and without the token', () => {
    const token = 'T'.repeat(43);
    w.run(
      'link.issue',
      { customer: 'example.org', archiveId: 'a'.repeat(32), token, clientIp: '192.0.2.99' },
      { SSH_CONNECTION: '198.51.100.4 40000 192.0.2.1 22' },
    );
    const lines = readFileSync(join(w.stateDir, 'dispatcher.log'), 'utf8').trim().split('\n');
    const last = JSON.parse(lines.at(-1)!);
    expect(last).toMatchObject({ action: 'link.issue', caller: '198.51.100.4', outcome: 'not_found' });
    expect(readFileSync(join(w.stateDir, 'dispatcher.log'), 'utf8')).not.toContain(token);
  });

  it('refuses random requests end to end, exactly when the shared validator does (property)', () => {
    const field = fc.constantFrom(
      'customer',
      'snapshot',
      'archiveId',
      'token',
      'tokenHash',
      'clientIp',
      'after',
      'limit',
      'path',
      '__proto__',
    );
    const value = fc.oneof(
      fc.string({ maxLength: 50 }),
      fc.constantFrom('example.org', '..', 'daily.0', '-rf', 'a'.repeat(32), '::1', '$(id)'),
      fc.integer(),
      fc.constant(null),
    );
    fc.assert(
      fc.property(fc.constantFrom(...REMOTE_ACTIONS), fc.dictionary(field, value, { maxKeys: 4 }), (action, req) => {
        const r = w.run(action, req);
        if (validateRequest(action, JSON.parse(JSON.stringify(req))).ok) {
          expect([0, 1]).toContain(r.code); // valid shape: done, or refused/not found by the action
        } else {
          expect(r.code).toBe(1);
          expect(r.answer.error.reason).toBe('bad_request');
        }
      }),
      { numRuns: 60 },
    );
  });

  it('leaves BACKUP_ROOT byte-identical, with the same mtimes', () => {
    expect(manifest(w.backupRoot)).toEqual(before);
    expect(existsSync(join(w.backupRoot, 'example.org', 'daily.0', 'a.txt'))).toBe(true);
  });
});

// The shared protocol module: action allow-set, field patterns, validators and the answer envelope.
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ALLOWED_ACTIONS,
  LOCAL_ACTIONS,
  REMOTE_ACTIONS,
  REQUEST_FIELDS,
  canonicalIp,
  downloadFileName,
  hashToken,
  isAction,
  isCustomer,
  isRemoteAction,
  isSnapshotName,
  newToken,
  parseAnswer,
  parseRequest,
  secureLinkMd5,
  validateRequest,
  type Action,
} from '../../src/protocol/index.js';

const TOKEN = 'A'.repeat(43);
const ID = '0123456789abcdef0123456789abcdef';
const HASH = 'f'.repeat(64);

describe('action names', () => {
  it('allows exactly the agreed remote and local actions', () => {
    expect([...REMOTE_ACTIONS]).toEqual([
      'ping',
      'backups.list',
      'archive.create',
      'archive.status',
      'archive.statuses',
      'archive.list',
      'archive.cancel',
      'archive.arm',
      'link.issue',
      'events.since',
    ]);
    expect([...LOCAL_ACTIONS]).toEqual(['watch', 'sweep', 'check']);
    expect(ALLOWED_ACTIONS.size).toBe(13);
  });

  it('refuses near misses, case changes, padding and prototype names', () => {
    for (const word of [
      'Ping',
      'ping ',
      ' ping',
      'ping\n',
      'ping;id',
      'archive',
      'archive.',
      'toString',
      '__proto__',
      'constructor',
      '',
      'ping\0',
    ]) {
      expect(isAction(word), word).toBe(false);
    }
    expect(isRemoteAction('watch')).toBe(false);
  });
});

describe('field patterns', () => {
  it('accepts installation domains and refuses paths, uppercase and traversal', () => {
    for (const ok of ['example.org', 'social.example.co.uk', 'a-b.example.net', 'xn--bcher-kva.example'])
      expect(isCustomer(ok), ok).toBe(true);
    for (const bad of [
      'Example.org',
      'example',
      '../example.org',
      'example.org/..',
      '-a.example.org',
      'a..b.org',
      'example.org.',
      'exa mple.org',
      'example.org\n',
      'a\0.org',
      `${'a'.repeat(64)}.org`,
    ]) {
      expect(isCustomer(bad), JSON.stringify(bad)).toBe(false);
    }
  });

  it('accepts rsnapshot and dated snapshot names and refuses traversal, slashes, NUL and leading dashes', () => {
    for (const ok of ['daily.0', 'weekly.3', '2026-11-21T03:00:00Z', 'backup+1', 'latest']) expect(isSnapshotName(ok), ok).toBe(true);
    for (const bad of [
      '.',
      '..',
      '../daily.0',
      'daily.0/..',
      '/etc',
      'a/b',
      '-rf',
      '--checkpoint-action=exec=sh',
      '.hidden',
      'a\0b',
      'a b',
      'daily.0\n',
      '',
      'x'.repeat(129),
    ]) {
      expect(isSnapshotName(bad), JSON.stringify(bad)).toBe(false);
    }
  });

  it('spells addresses exactly as nginx writes $remote_addr', () => {
    expect(canonicalIp('192.0.2.7')).toBe('192.0.2.7');
    expect(canonicalIp('2001:DB8:0:0:0:0:0:1')).toBe('2001:db8::1');
    expect(canonicalIp('2001:db8:0:1:0:0:0:1')).toBe('2001:db8:0:1::1');
    expect(canonicalIp('2001:db8:1:1:1:1:0:1')).toBe('2001:db8:1:1:1:1:0:1');
    expect(canonicalIp('0:0:0:0:0:0:0:1')).toBe('::1');
    expect(canonicalIp('::')).toBe('::');
    expect(canonicalIp('fe80::')).toBe('fe80::');
    expect(canonicalIp('::ffff:192.0.2.1')).toBe('::ffff:192.0.2.1');
    expect(canonicalIp('::ffff:c000:201')).toBe('::ffff:192.0.2.1');
    for (const bad of ['192.0.2.256', '01.2.3.4', '1.2.3', 'fe80::1%eth0', '1.2.3.4 ', 'localhost', '::1/128', '[::1]', '1::2::3', '']) {
      expect(canonicalIp(bad), bad).toBeNull();
    }
  });
});

describe('request validators', () => {
  it('accept a complete, exact request', () => {
    expect(validateRequest('link.issue', { customer: 'example.org', archiveId: ID, token: TOKEN, clientIp: '2001:DB8::1' })).toEqual({
      ok: true,
      value: { customer: 'example.org', archiveId: ID, token: TOKEN, clientIp: '2001:db8::1' },
    });
    expect(validateRequest('events.since', { after: 0 })).toEqual({ ok: true, value: { after: 0 } });
    expect(validateRequest('events.since', { after: 5, limit: 1000 })).toEqual({ ok: true, value: { after: 5, limit: 1000 } });
  });

  it('refuse unknown fields, missing fields and wrong types, without echoing values', () => {
    expect(validateRequest('ping', { x: 1 })).toEqual({ ok: false, problem: 'unknown field "x"' });
    expect(validateRequest('archive.status', { customer: 'example.org' })).toEqual({ ok: false, problem: 'missing field archiveId' });
    expect(validateRequest('archive.arm', { customer: 'example.org', archiveId: ID, tokenHash: HASH.toUpperCase() })).toEqual({
      ok: false,
      problem: 'invalid field tokenHash',
    });
    expect(validateRequest('events.since', { after: -1 })).toEqual({ ok: false, problem: 'invalid field after' });
    expect(validateRequest('events.since', { after: 1.5 })).toEqual({ ok: false, problem: 'invalid field after' });
    expect(validateRequest('events.since', { after: 0, limit: 1001 })).toEqual({ ok: false, problem: 'invalid field limit' });
    expect(validateRequest('backups.list', JSON.parse('{"customer":"example.org","__proto__":{"x":1}}'))).toEqual({
      ok: false,
      problem: 'unknown field "__proto__"',
    });
  });

  it('refuse stdin that is not exactly one JSON object, or is over the cap', () => {
    expect(parseRequest('ping', '[]')).toEqual({ ok: false, problem: 'request is not a JSON object' });
    expect(parseRequest('ping', 'null')).toEqual({ ok: false, problem: 'request is not a JSON object' });
    expect(parseRequest('ping', '{}{}')).toEqual({ ok: false, problem: 'request is not one JSON object' });
    expect(parseRequest('ping', '')).toEqual({ ok: false, problem: 'request is not one JSON object' });
    expect(parseRequest('ping', Buffer.from([0x7b, 0xff, 0x7d]))).toEqual({ ok: false, problem: 'request is not UTF-8' });
    expect(parseRequest('backups.list', JSON.stringify({ customer: 'example.org' }), 10)).toEqual({
      ok: false,
      problem: 'request larger than 10 bytes',
    });
    expect(parseRequest('ping', '{}\n')).toEqual({ ok: true, value: {} });
  });

  it('never accept a random request unless every field is valid (property)', () => {
    const actions = Object.keys(REQUEST_FIELDS) as Action[];
    const fieldNames = [...new Set(actions.flatMap((a) => Object.keys(REQUEST_FIELDS[a])))];
    const hostileString = fc.oneof(
      fc.string(),
      fc.constantFrom(
        '..',
        '../etc',
        '/etc/passwd',
        '-rf',
        'a\0b',
        'example.org\n',
        '$(id)',
        '`id`',
        ';id',
        'daily.0/../..',
        ' ',
        TOKEN,
        ID,
        HASH,
        'example.org',
        'daily.0',
        '::1',
        '1.2.3.4',
      ),
    );
    const value = fc.oneof(
      hostileString,
      fc.integer(),
      fc.double(),
      fc.boolean(),
      fc.constant(null),
      fc.array(fc.string(), { maxLength: 2 }),
      fc.object({ maxDepth: 1 }),
    );
    const request = fc.dictionary(fc.oneof(fc.constantFrom(...fieldNames), fc.string()), value, { maxKeys: 6 });
    fc.assert(
      fc.property(fc.constantFrom(...actions), request, (action, req) => {
        const r = validateRequest(action, req);
        const spec = REQUEST_FIELDS[action];
        const expected =
          Object.keys(req).every((k) => Object.prototype.hasOwnProperty.call(spec, k)) &&
          Object.entries(spec).every(([k, f]) => (Object.prototype.hasOwnProperty.call(req, k) ? f.check(req[k]) : f.optional === true));
        expect(r.ok).toBe(expected);
        if (r.ok) {
          // Whatever passes is made only of pattern-checked strings and bounded integers.
          for (const v of Object.values(r.value as Record<string, unknown>)) {
            if (typeof v === 'string') expect(v).toMatch(/^[A-Za-z0-9._:+-]+$/);
            else expect(Number.isSafeInteger(v)).toBe(true);
          }
        }
      }),
      { numRuns: 3000 },
    );
  });

  it('never accept random bytes on stdin for an action with required fields (property)', () => {
    fc.assert(
      fc.property(
        fc.constantFrom<Action>('backups.list', 'archive.create', 'archive.status', 'link.issue', 'archive.arm'),
        fc.uint8Array({ maxLength: 300 }),
        (action, bytes) => {
          expect(parseRequest(action, bytes).ok).toBe(false);
        },
      ),
      { numRuns: 2000 },
    );
  });
});

describe('envelope and link helpers', () => {
  it('parses only exact envelopes', () => {
    expect(parseAnswer('{"ok":true,"result":{"a":1}}')).toEqual({ ok: true, result: { a: 1 } });
    expect(parseAnswer('{"ok":false,"error":{"code":"refused","reason":"expired","message":"past retention"}}')).toEqual({
      ok: false,
      error: { code: 'refused', reason: 'expired', message: 'past retention' },
    });
    for (const bad of [
      '',
      '{}',
      '{"ok":true}',
      '{"ok":true,"result":{},"x":1}',
      '{"ok":false,"error":{"code":"teapot","reason":"expired","message":"x"}}',
      // A reason outside the union, one with another reason's code, or none: as garbled as no answer.
      '{"ok":false,"error":{"code":"refused","reason":"Please sign in again at https://evil.example","message":"x"}}',
      '{"ok":false,"error":{"code":"refused","reason":"__proto__","message":"x"}}',
      '{"ok":false,"error":{"code":"refused","reason":"toString","message":"x"}}',
      '{"ok":false,"error":{"code":"refused","reason":"busy","message":"x"}}',
      '{"ok":false,"error":{"code":"refused","message":"This archive has expired."}}',
      '{"ok":false,"error":{"code":"refused","reason":"expired","message":"x","wording":"Click here"}}',
      '{"ok":"true","result":{}}',
      'null',
    ]) {
      expect(parseAnswer(bad), bad).toBeNull();
    }
  });

  it('hashes tokens as hex sha256 of the token text and makes 43-character tokens', () => {
    const t = newToken();
    expect(t).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(hashToken(t)).toBe(createHash('sha256').update(t).digest('hex'));
  });

  it('signs links the way nginx secure_link_md5 checks them', () => {
    const expected = createHash('md5')
      .update('1700000000/dl/abc/f.tar192.0.2.7 s3cret')
      .digest('base64')
      .replace(/\+/g, '-')
      .replace(/\//g, '_')
      .replace(/=+$/, '');
    expect(secureLinkMd5(1700000000, '/dl/abc/f.tar', '192.0.2.7', 's3cret')).toBe(expected);
  });

  it('names downloads after customer, sanitised snapshot and id prefix', () => {
    expect(downloadFileName('example.org', '2026-11-21T03:00:00Z', ID)).toBe('example.org-2026-11-21T03-00-00Z-01234567.tar');
    expect(downloadFileName('example.org', 'daily.0', ID)).toBe('example.org-daily.0-01234567.tar');
    // The longest names the patterns allow still give a name nginx's location and the filesystem accept.
    const longest = downloadFileName(`${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}`, `x${'y:'.repeat(63)}z`, ID);
    expect(longest.length).toBeLessThanOrEqual(200);
    expect(longest).toMatch(/^[A-Za-z0-9][A-Za-z0-9._-]{0,250}\.tar$/);
    expect(longest.endsWith('-01234567.tar')).toBe(true);
  });
});

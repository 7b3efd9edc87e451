// The portal's client on its own: how each kind of answer or failure reaches the portal, and the local transport.
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BackupHostConfigError,
  BackupHostInternalError,
  BackupHostLimited,
  BackupHostRefused,
  BackupHostTimeout,
  BackupHostUnreachable,
  backupHostFromSettings,
  createBackupHost,
  createSshTransport,
  runBackupHostCheck,
  type RawOutcome,
  type Transport,
} from '../../src/backup-host/index.js';
import { DEFAULT_MAX_REQUEST_BYTES, newToken } from '../../src/protocol/index.js';
import { freeLoopbackPort, generateKeyPair } from '../harness/sshd.js';
import { DISPATCHER_BUNDLE } from './fixture.js';

let work: string;
let plainKey: string;
let encryptedKey: string;
const FINGERPRINT = `SHA256:${'A'.repeat(43)}`;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'archway-client-'));
  plainKey = (await generateKeyPair(work, 'plain')).privateKeyPath;
  encryptedKey = (await generateKeyPair(work, 'encrypted', 'correct horse battery staple')).privateKeyPath;
});

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

/** A transport that answers with a canned outcome and remembers what it was asked. */
function canned(outcome: Partial<RawOutcome>): Transport & { calls: Array<{ action: string; body: string }> } {
  const calls: Array<{ action: string; body: string }> = [];
  return {
    describe: 'canned',
    calls,
    run: async (action, body) => {
      calls.push({ action, body });
      return { exitCode: 0, signal: null, stdout: '', stderr: '', ...outcome };
    },
  };
}

describe('answers and failures as the portal sees them', () => {
  it('returns the result of a successful call', async () => {
    const t = canned({ stdout: JSON.stringify({ ok: true, result: { archiveId: 'a'.repeat(32), state: 'building' } }) });
    const result = await createBackupHost(t).createArchive({ customer: 'example.org', snapshot: 'daily.0' });
    expect(result).toEqual({ archiveId: 'a'.repeat(32), state: 'building' });
    expect(t.calls).toEqual([{ action: 'archive.create', body: '{"customer":"example.org","snapshot":"daily.0"}' }]);
  });

  it("turns exit 1 with an envelope into BackupHostRefused: the reason, the portal's words for the customer", async () => {
    const answer = { ok: false, error: { code: 'not_found', reason: 'not_found', message: 'no such archive for this customer' } };
    const t = canned({ exitCode: 1, stdout: JSON.stringify(answer) });
    const err = await createBackupHost(t)
      .archiveStatus({ customer: 'example.org', archiveId: 'b'.repeat(32) })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackupHostRefused);
    expect(err).toMatchObject({ code: 'not_found', reason: 'not_found', userMessage: 'No such archive.' });
    expect((err as Error).message).toContain('no such archive for this customer');
  });

  it("turns the host's limits into BackupHostLimited, worded by the portal for the reason", async () => {
    const asked = { customer: 'example.org', snapshot: 'daily.0' };
    const quota = {
      ok: false,
      error: { code: 'quota', reason: 'quota_ready', message: 'the customer has as many ready archives as allowed' },
    };
    const q = await createBackupHost(canned({ exitCode: 1, stdout: JSON.stringify(quota) }))
      .createArchive(asked)
      .catch((e: unknown) => e);
    expect(q).toBeInstanceOf(BackupHostLimited);
    expect(q).toMatchObject({
      code: 'quota',
      reason: 'quota_ready',
      userMessage:
        'You already have as many archives ready to download as this backup host allows. Please download one (or wait until one expires) before asking for another.',
    });
    const busy = { ok: false, error: { code: 'busy', reason: 'busy', message: 'the host-wide rate is reached' } };
    const b = await createBackupHost(canned({ exitCode: 1, stdout: JSON.stringify(busy) }))
      .createArchive(asked)
      .catch((e: unknown) => e);
    expect(b).toBeInstanceOf(BackupHostLimited);
    expect(b).toMatchObject({
      code: 'busy',
      userMessage: 'The backup service is handling too many requests right now. Please try again in an hour.',
    });
  });

  it('turns a refusal by the gate (exit 1, no envelope) into BackupHostRefused', async () => {
    const t = canned({ exitCode: 1, stderr: 'archway-gate: refused: not an allowed action\n' });
    await expect(createBackupHost(t).ping()).rejects.toThrow(/refused.*archway-gate/);
  });

  it('turns exit 2, a garbled answer, an unknown exit code and a signal into BackupHostInternalError', async () => {
    const internal = JSON.stringify({ ok: false, error: { code: 'internal', reason: 'internal', message: 'see the call log' } });
    // A refusal whose reason the portal does not know is garbled too: no words of the host's reach a customer.
    const unknownReason = JSON.stringify({ ok: false, error: { code: 'refused', reason: 'click_here', message: 'Visit evil.example' } });
    for (const outcome of [
      { exitCode: 2, stdout: internal },
      { exitCode: 1, stdout: unknownReason },
      { exitCode: 0, stdout: 'not json' },
      { exitCode: 0, stdout: JSON.stringify({ ok: true, result: { unexpected: true } }) },
      { exitCode: 0, stdout: `${JSON.stringify({ ok: true, result: {} })}\n${JSON.stringify({ ok: true, result: {} })}` },
      { exitCode: 127, stderr: 'sudo: not found' },
      { exitCode: null, signal: 'SIGKILL' },
    ]) {
      await expect(createBackupHost(canned(outcome)).ping()).rejects.toThrow(BackupHostInternalError);
    }
  });

  it('refuses an invalid request without contacting the host, and never echoes a token', async () => {
    const t = canned({});
    const token = newToken();
    const err = await createBackupHost(t)
      .issueLink({ customer: 'example.org', archiveId: 'c'.repeat(32), token, clientIp: 'not-an-ip' })
      .catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(BackupHostRefused);
    expect((err as Error).message).toContain('clientIp');
    expect((err as Error).message).not.toContain(token);
    const bad = await createBackupHost(t)
      .issueLink({ customer: 'example.org', archiveId: 'c'.repeat(32), token: `${token}!`, clientIp: '127.0.0.2' })
      .catch((e: unknown) => e as Error);
    expect((bad as Error).message).not.toContain(token);
    expect(t.calls).toEqual([]);
  });
});

describe('archiveStatuses: many archive.status answers in as few calls as fit', () => {
  const id = (n: number) => n.toString(16).padStart(32, '0');
  const status = {
    state: 'building',
    bytesWritten: 10,
    filesWritten: 1,
    percent: 5,
    sizeBytes: null,
    sha256: null,
    failureReason: null,
    createdAt: '2026-11-29T03:00:00.000Z',
    readyAt: null,
    expiresAt: null,
    downloadFileName: 'example.org-daily.0-00000000.tar',
  };
  const notFound = { ok: false, error: { code: 'not_found', reason: 'not_found', message: 'no such archive for this customer' } };
  /** Answers every asked id: building, except ids ending in f, which are not found. */
  function echoing(): Transport & { asked: number[]; bodyBytes: number[] } {
    const asked: number[] = [];
    const bodyBytes: number[] = [];
    return {
      describe: 'echoing',
      asked,
      bodyBytes,
      run: async (action, body) => {
        expect(action).toBe('archive.statuses');
        bodyBytes.push(Buffer.byteLength(body));
        const { archives } = JSON.parse(body) as { archives: Array<{ archiveId: string }> };
        asked.push(archives.length);
        const statuses = archives.map(({ archiveId }) => ({
          archiveId,
          answer: archiveId.endsWith('f') ? notFound : { ok: true, result: status },
        }));
        return { exitCode: 0, signal: null, stdout: JSON.stringify({ ok: true, result: { statuses } }), stderr: '' };
      },
    };
  }

  it('reads each entry as archiveStatus would: a result, or the BackupHostRefused it would throw', async () => {
    const t = echoing();
    const refs = [
      { customer: 'example.org', archiveId: id(1) },
      { customer: 'other.net', archiveId: id(15) },
    ];
    const outcomes = await createBackupHost(t).archiveStatuses(refs);
    expect(t.asked).toEqual([2]);
    expect(outcomes[0]).toEqual({ ...refs[0], ok: true, status });
    expect(outcomes[1]).toMatchObject({ ...refs[1], ok: false });
    const error = outcomes[1]?.ok === false ? outcomes[1].error : null;
    expect(error).toBeInstanceOf(BackupHostRefused);
    expect(error).toMatchObject({ code: 'not_found', reason: 'not_found', userMessage: 'No such archive.' });
  });

  it('splits 1,200 archives into calls of at most 500, and long names into calls under the request cap, in order', async () => {
    const t = echoing();
    const refs = Array.from({ length: 1200 }, (_, i) => ({ customer: 'example.org', archiveId: id(i * 16 + 1) }));
    const outcomes = await createBackupHost(t).archiveStatuses(refs);
    expect(t.asked).toEqual([500, 500, 200]);
    expect(outcomes.map((o) => o.archiveId)).toEqual(refs.map((r) => r.archiveId));
    const long = `${'a'.repeat(60)}.${'b'.repeat(60)}.${'c'.repeat(60)}.${'d'.repeat(60)}.org`;
    const u = echoing();
    await createBackupHost(u).archiveStatuses(refs.slice(0, 500).map((r) => ({ ...r, customer: long })));
    expect(u.asked).toHaveLength(3);
    expect(u.asked.reduce((a, b) => a + b)).toBe(500);
    expect(Math.max(...u.bodyBytes)).toBeLessThanOrEqual(DEFAULT_MAX_REQUEST_BYTES);
    expect(Math.max(...u.bodyBytes)).toBeGreaterThan(DEFAULT_MAX_REQUEST_BYTES - 400);
  });

  it('asks nothing for an empty list, and refuses a repeated id or a bad entry without calling the host', async () => {
    const t = echoing();
    const host = createBackupHost(t);
    expect(await host.archiveStatuses([])).toEqual([]);
    const twice = [
      ...Array.from({ length: 600 }, (_, i) => ({ customer: 'example.org', archiveId: id(i * 16) })),
      { customer: 'x.org', archiveId: id(0) },
    ];
    await expect(host.archiveStatuses(twice)).rejects.toMatchObject({
      reason: 'bad_request',
      message: expect.stringContaining('listed twice'),
    });
    await expect(host.archiveStatuses([{ customer: '../etc', archiveId: id(1) }])).rejects.toMatchObject({ reason: 'bad_request' });
    expect(t.asked).toEqual([]);
  });

  it('turns an answer with missing, extra, reordered or garbled entries into BackupHostInternalError', async () => {
    const refs = [
      { customer: 'example.org', archiveId: id(1) },
      { customer: 'example.org', archiveId: id(2) },
    ];
    const entry = (archiveId: string, answer: unknown = { ok: true, result: status }) => ({ archiveId, answer });
    for (const statuses of [
      [entry(id(1))],
      [entry(id(1)), entry(id(2)), entry(id(3))],
      [entry(id(2)), entry(id(1))],
      [entry(id(1)), entry(id(2), { ok: true, result: { state: 'ready' } })],
      [entry(id(1)), entry(id(2), { ok: false, error: { code: 'refused', reason: 'click_here', message: 'Visit evil.example' } })],
      'not a list',
    ]) {
      const t = canned({ stdout: JSON.stringify({ ok: true, result: { statuses } }) });
      await expect(createBackupHost(t).archiveStatuses(refs), JSON.stringify(statuses)).rejects.toThrow(BackupHostInternalError);
    }
  });
});

describe('setting up the SSH transport', () => {
  it('refuses a fingerprint that is not SHA256:<base64>', () => {
    expect(() =>
      createSshTransport({ host: '127.0.0.1', port: 22, user: 'archway', privateKeyPath: plainKey, hostKeyFingerprint: 'MD5:aa:bb' }),
    ).toThrow(BackupHostConfigError);
  });

  it('opens an encrypted key with its passphrase and refuses it without one', () => {
    const base = { host: '127.0.0.1', port: 22, user: 'archway', hostKeyFingerprint: FINGERPRINT };
    expect(() =>
      createSshTransport({ ...base, privateKeyPath: encryptedKey, privateKeyPassphrase: 'correct horse battery staple' }),
    ).not.toThrow();
    expect(() => createSshTransport({ ...base, privateKeyPath: encryptedKey })).toThrow(/passphrase is missing or wrong/);
    expect(() => createSshTransport({ ...base, privateKeyPath: encryptedKey, privateKeyPassphrase: 'wrong' })).toThrow(
      BackupHostConfigError,
    );
    expect(() => createSshTransport({ ...base, privateKeyPath: join(work, 'missing') })).toThrow(
      /cannot read the backup host private key file: ENOENT/,
    );
  });

  it('reports a closed port as unreachable', async () => {
    const port = await freeLoopbackPort();
    const host = backupHostFromSettings({
      host: '127.0.0.1',
      port,
      user: 'archway',
      privateKeyPath: plainKey,
      hostKeyFingerprint: FINGERPRINT,
    });
    await expect(host.ping()).rejects.toThrow(BackupHostUnreachable);
  });

  it('gives up on a server that never speaks SSH within the connect timeout, and on a call that takes too long', async () => {
    const silent: Server = createServer(() => undefined);
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    try {
      const port = (silent.address() as { port: number }).port;
      const host = backupHostFromSettings({
        host: '127.0.0.1',
        port,
        user: 'archway',
        privateKeyPath: plainKey,
        hostKeyFingerprint: FINGERPRINT,
        connectTimeoutMs: 300,
      });
      const started = Date.now();
      await expect(host.ping()).rejects.toThrow(/timed out after 300 ms/);
      expect(Date.now() - started).toBeLessThan(5000);
      const slowCall = backupHostFromSettings({
        host: '127.0.0.1',
        port,
        user: 'archway',
        privateKeyPath: plainKey,
        hostKeyFingerprint: FINGERPRINT,
        connectTimeoutMs: 5000,
        callTimeoutMs: 300,
      });
      const err = await slowCall.ping().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(BackupHostTimeout);
      expect((err as Error).message).toMatch(/did not answer ping within 300 ms/);
    } finally {
      silent.close();
    }
  });
});

describe('the local transport (first look and tests)', () => {
  let configPath = '';

  beforeAll(async () => {
    const root = join(work, 'local');
    for (const d of ['backups/example.org/daily.0', 'archives', 'links', 'state']) await mkdir(join(root, d), { recursive: true });
    await writeFile(join(root, 'secret'), `${randomBytes(32).toString('base64url')}\n`, { mode: 0o600 });
    configPath = join(root, 'dispatcher.json');
    await writeFile(
      configPath,
      JSON.stringify({
        backupRoot: join(root, 'backups'),
        archiveRoot: join(root, 'archives'),
        linkRoot: join(root, 'links'),
        stateDir: join(root, 'state'),
        secureLinkSecretFile: join(root, 'secret'),
        downloadBaseUrl: 'http://127.0.0.1:8081',
        downloadLog: join(root, 'download.log'),
      }),
      { mode: 0o600 },
    );
    await chmod(configPath, 0o600);
  });

  it('runs the built dispatcher as a child process and gets its answers', async () => {
    const host = backupHostFromSettings({ localDispatcherConfig: configPath, localDispatcherPath: DISPATCHER_BUNDLE });
    expect((await host.ping()).roots).toEqual({ backup: true, archive: true, link: true });
    expect((await host.listBackups({ customer: 'example.org' })).snapshots.map((s) => s.name)).toEqual(['daily.0']);
    await expect(host.archiveStatus({ customer: 'example.org', archiveId: 'd'.repeat(32) })).rejects.toThrow(BackupHostRefused);
    const [missing] = await host.archiveStatuses([{ customer: 'example.org', archiveId: 'd'.repeat(32) }]);
    expect(missing).toMatchObject({ ok: false, error: { code: 'not_found', userMessage: 'No such archive.' } });
  });

  it("words the real dispatcher's refusals in the portal's sentences, keeping the host's line for the log", async () => {
    const host = backupHostFromSettings({ localDispatcherConfig: configPath, localDispatcherPath: DISPATCHER_BUNDLE });
    const link = { customer: 'example.org', archiveId: 'd'.repeat(32), token: newToken(), clientIp: '192.0.2.1' };
    const missing = await host.issueLink(link).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(BackupHostRefused);
    expect(missing).toMatchObject({
      code: 'not_found',
      reason: 'not_found',
      userMessage: 'No such archive.',
      message: 'backup host refused the call (not_found): no such archive for this customer',
    });
    const noBackups = await host.createArchive({ customer: 'nobody.example', snapshot: 'daily.0' }).catch((e: unknown) => e);
    expect(noBackups).toMatchObject({ reason: 'no_backups', userMessage: 'No backups found for this customer.' });
  });

  it('prints the check report for a local dispatcher', async () => {
    let text = '';
    const code = await runBackupHostCheck(
      { localDispatcherConfig: configPath, localDispatcherPath: DISPATCHER_BUNDLE },
      { write: (s: string) => (text += s) },
    );
    expect(text).toContain('backup host: local dispatcher');
    expect(text).toContain('result: OK');
    expect(code).toBe(0);
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKeyRing, keyIdOf, UndecryptableSecret } from '../../src/two-factor/key-ring.js';
import { base32Encode, otpauthUri, qrCodeSvg } from '../../src/two-factor/totp.js';
import { TEST_SECRETS } from '../harness/app.js';
import { WebClient } from '../harness/web-client.js';
import { decodeQrSvg } from './qr-decode.js';
import {
  alignToMidStep,
  deliverMail,
  enrolThroughPages,
  phoneCode,
  recipients,
  secretOnPage,
  signedInClient,
  signInWithCode,
  startWorld,
} from './fixtures.js';
import type { PortalWorld } from '../harness/world.js';
import { createUser, PASSWORD } from '../harness/users.js';

let world: PortalWorld;
beforeAll(async () => {
  world = await startWorld();
});
afterAll(async () => world.close());

const db = () => world.app.ctx.database.db;
/** The account's audited security events, oldest first. */
const auditedActions = async (userId: string) =>
  (await db().selectFrom('audit_log').select('action').where('subject', '=', userId).orderBy('chain_seq').execute()).map((r) => r.action);
const clock = () => world.clock;

async function twoFactorRow(userId: string) {
  return db().selectFrom('two_factor').selectAll().where('user_id', '=', userId).executeTakeFirst();
}
async function codeRows(userId: string) {
  return db().selectFrom('two_factor_recovery_codes').selectAll().where('user_id', '=', userId).orderBy('id').execute();
}
async function sessionCount(userId: string) {
  return (await db().selectFrom('sessions').select('id').where('user_id', '=', userId).execute()).length;
}

describe('enrolling in two-factor sign-in', () => {
  it('shows a QR code drawn on the server and the key as text, in a labelled form', async () => {
    const user = await createUser(world.app);
    const client = await signedInClient(world.app, user.email, PASSWORD);
    const page = await client.get('/account/two-factor/enrol');
    expect(page.status).toBe(200);
    expect(page.headers['cache-control']).toBe('no-store');
    expect(page.body).toMatch(/<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"[^>]*viewBox="0 0 \d+ \d+"/);
    expect(page.body).not.toContain('<script');
    expect(page.body).toContain('<label for="code">Code from the app</label>');
    expect(page.body).toContain('autocomplete="one-time-code"');
    expect(page.body).toContain('<label for="password">Your password</label>');
    expect(page.body).toContain('autocomplete="current-password"');
    const secret = secretOnPage(page.body);
    expect(secret.length).toBeGreaterThanOrEqual(20);
    // A reload shows the same key, since the phone may already have scanned it.
    expect(secretOnPage((await client.get('/account/two-factor/enrol')).body)).toEqual(secret);
  });

  it('draws a QR code that decodes to the otpauth:// URI with the issuer, the account and the key', async () => {
    const user = await createUser(world.app);
    const client = await signedInClient(world.app, user.email, PASSWORD);
    const page = await client.get('/account/two-factor/enrol');
    const svg = /<svg[\s\S]*?<\/svg>/.exec(page.body)?.[0];
    expect(svg).toBeDefined();
    const secret = secretOnPage(page.body);
    const decoded = decodeQrSvg(svg!);
    const expected = `otpauth://totp/Archway%20(portal.example.net):${encodeURIComponent(user.email)}?secret=${base32Encode(secret)}&issuer=Archway%20(portal.example.net)`;
    expect(decoded).toBe(expected);
    expect(decoded).toBe(otpauthUri('Archway (portal.example.net)', user.email, secret));
    // And the picture is exactly the one the qrcode package draws for that URI.
    expect(svg).toBe((await qrCodeSvg(expected)).trim());
  });

  it('refuses a wrong code and changes nothing: still off, no codes, no mail, other browsers still signed in', async () => {
    const user = await createUser(world.app);
    const other = await signedInClient(world.app, user.email, PASSWORD);
    const client = await signedInClient(world.app, user.email, PASSWORD);
    const page = await client.get('/account/two-factor/enrol');
    const secret = secretOnPage(page.body);
    const before = await twoFactorRow(user.id);
    alignToMidStep(clock());
    const right = phoneCode(clock(), secret);
    const wrong = right === '000000' ? '111111' : '000000';

    const answer = await client.post('/account/two-factor/enrol', { code: wrong, password: PASSWORD });
    expect(answer.status).toBe(422);
    expect(answer.body).toContain('<p class="field-error" id="code-error">That code is not right.');
    expect(answer.body).not.toContain(PASSWORD);
    // The same key is shown again, so the user can simply try the next code.
    expect(secretOnPage(answer.body)).toEqual(secret);
    expect(await twoFactorRow(user.id)).toEqual(before);
    expect(before!.enabled_at).toBeNull();
    expect(await codeRows(user.id)).toEqual([]);
    expect(await sessionCount(user.id)).toBe(2);
    expect((await other.get('/account')).status).toBe(200);

    const wrongPassword = await client.post('/account/two-factor/enrol', { code: right, password: 'Not-My-Password-1' });
    expect(wrongPassword.status).toBe(422);
    expect(wrongPassword.body).toContain('<p class="field-error" id="password-error">That is not your password.</p>');
    expect(await twoFactorRow(user.id)).toEqual(before);

    for (const form of [
      { code: 'abcdef', password: PASSWORD },
      { code: '', password: '' },
      { code: '1234567', password: PASSWORD },
    ]) {
      const bad = await client.post('/account/two-factor/enrol', form);
      expect(bad.status).toBe(422);
      expect(await twoFactorRow(user.id)).toEqual(before);
    }
    expect(await deliverMail(world)).toEqual([]);
  });

  it('stores the secret encrypted under a key id, bound to the account: not the base32 key, not the bytes', async () => {
    const user = await createUser(world.app);
    const client = await signedInClient(world.app, user.email, PASSWORD);
    const { secret } = await enrolThroughPages(client, clock(), PASSWORD);
    const row = await twoFactorRow(user.id);
    const stored = row!.secret_encrypted;
    expect(stored).not.toContain(base32Encode(secret));
    expect(stored.toLowerCase()).not.toContain(secret.toString('hex'));
    expect(stored).not.toContain(secret.toString('base64url'));
    const key = Buffer.from(TEST_SECRETS.ARCHWAY_ENCRYPTION_KEY, 'hex');
    expect(stored).toMatch(new RegExp(`^v1:${keyIdOf(key)}:[A-Za-z0-9_-]{16}:[A-Za-z0-9_-]+$`));
    const ring = createKeyRing(key);
    expect(ring.decrypt(stored, user.id)).toEqual(secret);
    // Copied onto another account's row, it does not decrypt.
    expect(() => ring.decrypt(stored, '00000000-0000-0000-0000-000000000000')).toThrow(UndecryptableSecret);
  });

  it('turns on with the right code and password: ten codes shown once, other browsers signed out, the user emailed', async () => {
    const user = await createUser(world.app);
    await deliverMail(world);
    const other = await signedInClient(world.app, user.email, PASSWORD);
    const client = await signedInClient(world.app, user.email, PASSWORD);
    const { recoveryCodes } = await enrolThroughPages(client, clock(), PASSWORD);
    expect(new Set(recoveryCodes).size).toBe(10);

    const row = await twoFactorRow(user.id);
    expect(row!.enabled_at).not.toBeNull();
    expect(row!.last_used_step).not.toBeNull();
    const codes = await codeRows(user.id);
    expect(codes).toHaveLength(10);
    for (const code of recoveryCodes) {
      expect(codes.some((c) => c.code_hash.toString('hex').includes(Buffer.from(code).toString('hex')))).toBe(false);
    }
    expect(codes.every((c) => c.code_hash.length === 32 && c.used_at === null)).toBe(true);

    expect((await other.get('/account')).location).toBe('/sign-in?next=%2Faccount');
    expect(await sessionCount(user.id)).toBe(1);

    const settings = await client.get('/account/two-factor');
    expect(settings.body).toContain('Two-factor sign-in is <strong>on</strong>');
    expect(settings.body).toContain('You have <strong>10</strong> unused recovery codes of 10.');
    expect(settings.body).not.toContain(recoveryCodes[0]);
    // The key is never shown again.
    const again = await client.get('/account/two-factor/enrol');
    expect(again.status).toBe(303);
    expect(again.location).toBe('/account/two-factor');

    const mail = await deliverMail(world);
    expect(mail.map((m) => [recipients(m), m.subject])).toEqual([[[user.email], 'Two-factor sign-in is on for your Archway account']]);
    expect(mail[0]!.text).not.toContain(recoveryCodes[0]);
    expect(await auditedActions(user.id)).toEqual(['two-factor.enabled']);
  });

  it('makes a new set of recovery codes only with the password; the old set stops working', async () => {
    const user = await createUser(world.app);
    const client = await signedInClient(world.app, user.email, PASSWORD);
    const { recoveryCodes: first } = await enrolThroughPages(client, clock(), PASSWORD);
    await deliverMail(world);
    const before = await codeRows(user.id);

    await client.get('/account/two-factor');
    const refused = await client.post('/account/two-factor/recovery-codes', { password: 'Not-My-Password-1' });
    expect(refused.status).toBe(422);
    expect(refused.body).toContain('<p class="field-error" id="codes-password-error">That is not your password.</p>');
    expect(await codeRows(user.id)).toEqual(before);

    await client.get('/account/two-factor');
    const made = await client.post('/account/two-factor/recovery-codes', { password: PASSWORD });
    expect(made.status).toBe(200);
    expect(made.headers['cache-control']).toBe('no-store');
    const second = [...made.body.matchAll(/<li><code>([a-z2-7-]{14})<\/code><\/li>/g)].map((m) => m[1]);
    expect(second).toHaveLength(10);
    expect(second.filter((c) => first.includes(c!))).toEqual([]);
    const after = await codeRows(user.id);
    expect(after).toHaveLength(10);
    expect(after.map((r) => r.id).filter((id) => before.some((b) => b.id === id))).toEqual([]);
    const mail = await deliverMail(world);
    expect(mail.map((m) => m.subject)).toEqual(['New recovery codes for your Archway account']);

    // At the second sign-in step, an old code is refused and a new one works.
    const old = await signInWithCode(new WebClient(world.app), user.email, PASSWORD, first[0]!);
    expect(old.status).toBe(401);
    const fresh = await signInWithCode(new WebClient(world.app), user.email, PASSWORD, second[0]!);
    expect(fresh.location).toBe('/account');
    await deliverMail(world);
    expect(await auditedActions(user.id)).toEqual([
      'two-factor.enabled',
      'two-factor.recovery_codes_renewed',
      'two-factor.recovery_code_used',
    ]);
  });
});

describe('turning two-factor sign-in off', () => {
  it('needs the password and a current code; then ends other browsers and remember-me, and emails the user', async () => {
    const user = await createUser(world.app);
    const client = await signedInClient(world.app, user.email, PASSWORD);
    const { secret } = await enrolThroughPages(client, clock(), PASSWORD);
    await deliverMail(world);
    await db()
      .insertInto('remember_logins')
      .values({
        user_id: user.id,
        series: 'x'.repeat(43),
        token_hash: Buffer.alloc(32),
        created_at: clock().now(),
        last_used_at: clock().now(),
        expires_at: new Date(clock().now().getTime() + 86_400_000),
        ip: null,
        user_agent: null,
        session_id: null,
      })
      .execute();
    alignToMidStep(clock());

    await client.get('/account/two-factor');
    const noCode = await client.post('/account/two-factor/disable', { password: PASSWORD, code: '' });
    expect(noCode.status).toBe(422);
    expect(noCode.body).toContain(
      '<p class="field-error" id="disable-code-error">Enter the code your app shows now, or a recovery code.</p>',
    );
    const noPassword = await client.post('/account/two-factor/disable', { password: '', code: phoneCode(clock(), secret) });
    expect(noPassword.status).toBe(422);
    expect(noPassword.body).toContain('<p class="field-error" id="disable-password-error">Enter your password.</p>');
    const wrongCode = await client.post('/account/two-factor/disable', {
      password: PASSWORD,
      code: '999999' === phoneCode(clock(), secret) ? '888888' : '999999',
    });
    expect(wrongCode.status).toBe(422);
    expect((await twoFactorRow(user.id))!.enabled_at).not.toBeNull();
    expect(await deliverMail(world)).toEqual([]);

    // A second browser, signed in with both steps, is signed out when two-factor goes off.
    clock().advance(30_000);
    const other = new WebClient(world.app);
    expect((await signInWithCode(other, user.email, PASSWORD, phoneCode(clock(), secret))).location).toBe('/account');
    clock().advance(30_000);

    const off = await client.post('/account/two-factor/disable', { password: PASSWORD, code: phoneCode(clock(), secret) });
    expect(off.status).toBe(303);
    expect(off.location).toBe('/account/two-factor?off');
    expect(await twoFactorRow(user.id)).toBeUndefined();
    expect(await codeRows(user.id)).toEqual([]);
    expect(await db().selectFrom('remember_logins').select('id').where('user_id', '=', user.id).execute()).toEqual([]);
    expect((await client.get('/account/two-factor?off')).body).toContain('Two-factor sign-in is off. Every other browser was signed out.');
    expect((await other.get('/account')).location).toBe('/sign-in?next=%2Faccount');
    expect((await client.get('/account')).status).toBe(200);
    const mail = await deliverMail(world);
    expect(mail.map((m) => m.subject)).toEqual(['Two-factor sign-in was turned off for your Archway account']);
    expect((await auditedActions(user.id)).at(-1)).toBe('two-factor.disabled');
  });
});

describe('the key ring', () => {
  it('reads secrets made under an older key given in ARCHWAY_ENCRYPTION_KEYS_OLD, and writes under the current one', () => {
    const oldKey = Buffer.alloc(32, 7);
    const newKey = Buffer.alloc(32, 9);
    const before = createKeyRing(oldKey).encrypt(Buffer.from('secret bytes'), 'user-1');
    const ring = createKeyRing(newKey, [oldKey]);
    expect(ring.decrypt(before, 'user-1').toString()).toBe('secret bytes');
    expect(ring.keyIdIn(ring.encrypt(Buffer.from('x'), 'user-1'))).toBe(keyIdOf(newKey));
    expect(() => createKeyRing(newKey).decrypt(before, 'user-1')).toThrow(
      /neither ARCHWAY_ENCRYPTION_KEY nor in ARCHWAY_ENCRYPTION_KEYS_OLD/,
    );
    const tampered = before.slice(0, -2) + (before.endsWith('AA') ? 'BB' : 'AA');
    expect(() => ring.decrypt(tampered, 'user-1')).toThrow(UndecryptableSecret);
  });
});

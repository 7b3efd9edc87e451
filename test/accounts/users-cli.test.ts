import pg from 'pg';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findUserByEmail } from '../../src/users/user.repository.js';
import { TEST_SECRETS } from '../harness/app.js';
import { runCli } from '../harness/cli.js';
import { WebClient } from '../harness/web-client.js';
import { deliverMail, linkIn, recipients, startWorld } from './fixtures.js';
import type { PortalWorld } from '../harness/world.js';
import { createUser, PASSWORD } from '../harness/users.js';

let world: PortalWorld;
let dir: string;
let env: Record<string, string>;
beforeAll(async () => {
  world = await startWorld();
  dir = mkdtempSync(path.join(tmpdir(), 'archway-users-'));
  // The fleet the commands check host names against; its keys are never read by these commands.
  const hostsFile = path.join(dir, 'hosts.toml');
  writeFileSync(
    hostsFile,
    ['backup-1.example.net', 'backup-2']
      .map(
        (name) => `[[hosts]]\nname = "${name}"\naddress = "127.0.0.1"\nkeyFile = "portal-key"\nfingerprint = "SHA256:${'A'.repeat(43)}"\n`,
      )
      .join('\n'),
  );
  env = {
    ARCHWAY_BACKUP_HOSTS_FILE: hostsFile,
    ARCHWAY_DATABASE_URL: world.database.url,
    ARCHWAY_SMTP_URL: world.sink.url,
    ARCHWAY_PUBLIC_URL: 'https://portal.example.net',
    ...TEST_SECRETS,
  };
});
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await world.close();
});

const db = () => world.app.ctx.database.db;
const users = () =>
  db()
    .selectFrom('users')
    .select(['email', 'role', 'domain', 'plan', 'status', 'backup_host', 'paypal_subscription_id'])
    .orderBy('email')
    .execute();
const queued = () => db().selectFrom('mail_queue').select(['recipient', 'template']).where('status', '=', 'pending').execute();

function csv(name: string, text: string): string {
  const file = path.join(dir, name);
  writeFileSync(file, text);
  return file;
}

describe('archway users add', () => {
  it('creates an invited customer and sends an invitation whose link sets the password once', async () => {
    const result = await runCli(
      [
        'users',
        'add',
        '--email',
        'Chloe@Example.NET',
        '--domain',
        'Social.Chloe.example',
        '--plan',
        'small',
        '--backup-host',
        'backup-1.example.net',
        '--paypal-subscription-id',
        'I-BW452GLLEP1G',
      ],
      { env },
    );
    expect(result.stderr).toBe('');
    expect(result.stdout).toBe('Added Chloe@example.net (customer, social.chloe.example, plan small). The invitation email is queued.\n');
    expect(result.code).toBe(0);
    const user = await findUserByEmail(db(), 'chloe@example.net');
    expect(user).toMatchObject({
      email: 'Chloe@example.net',
      role: 'customer',
      domain: 'social.chloe.example',
      plan: 'small',
      status: 'invited',
      backupHost: 'backup-1.example.net',
      paypalSubscriptionId: 'I-BW452GLLEP1G',
      passwordHash: null,
    });

    const [invitation, ...more] = await deliverMail(world);
    expect(more).toEqual([]);
    expect(recipients(invitation!)).toEqual(['Chloe@example.net']);
    expect(invitation!.subject).toBe('Your Archway account is ready: set your password');
    expect(invitation!.text).toContain('Your sign-in address is Chloe@example.net.');
    expect(invitation!.html).toContain('href="https://portal.example.net/set-password?token=');
    const link = linkIn(invitation!);
    // Only the verifier's SHA-256 is stored: the link's text appears nowhere in the database.
    const [selector, verifier] = link.split('=')[1]!.split('.') as [string, string];
    const token = await db().selectFrom('account_tokens').selectAll().where('selector', '=', selector).executeTakeFirstOrThrow();
    expect(token.purpose).toBe('invitation');
    expect(Buffer.from(token.verifier_hash).toString('hex')).toHaveLength(64);
    expect(JSON.stringify(token)).not.toContain(verifier);
    expect(token.expires_at.getTime() - token.created_at.getTime()).toBe(7 * 24 * 3_600_000);

    const browser = new WebClient(world.app);
    await browser.get(link);
    const form = await browser.get('/set-password');
    expect(form.body).toContain('<h1>Choose your password</h1>');
    expect((await browser.post('/set-password', { password: PASSWORD, password_confirm: PASSWORD })).location).toBe('/set-password/done');
    const active = await findUserByEmail(db(), 'chloe@example.net');
    expect(active?.status).toBe('active');
    // A first password is not a change: no "password changed" message.
    expect(await deliverMail(world)).toEqual([]);
    expect((await new WebClient(world.app).signIn('chloe@example.net', PASSWORD)).status).toBe(303);

    const second = new WebClient(world.app);
    await second.get(link);
    expect((await second.get('/set-password')).status).toBe(400);
  });

  it('adds an operator without domain or plan', async () => {
    const result = await runCli(['users', 'add', '--email', 'ops@example.net', '--role', 'operator'], { env });
    expect(result.stdout).toBe('Added ops@example.net (operator). The invitation email is queued.\n');
    expect(result.code).toBe(0);
    expect(await findUserByEmail(db(), 'ops@example.net')).toMatchObject({ role: 'operator', domain: null, plan: null });
    await deliverMail(world);
  });

  it('refuses a duplicate address whatever its case, a bad domain, plan or role, each with its own message', async () => {
    const existing = await createUser(world.app, { email: 'taken@example.net' });
    const before = await users();
    const dup = await runCli(['users', 'add', '--email', 'TAKEN@example.net', '--domain', 'x.example.org', '--plan', 'small'], { env });
    expect(dup.code).toBe(65);
    expect(dup.stderr).toBe('archway users: There is already an account with the email address TAKEN@example.net.\n');
    const bad = await runCli(
      ['users', 'add', '--email', 'new@example.net', '--domain', 'not a domain', '--plan', 'Small Plan!', '--role', 'admin'],
      { env },
    );
    expect(bad.code).toBe(65);
    expect(bad.stderr).toBe(
      [
        'archway users: "admin" is not a role: use customer or operator.',
        'archway users: "not a domain" is not a domain name like social.example.net.',
        'archway users: "Small Plan!" is not a plan name: use up to 40 letters, digits, dots, dashes or underscores.',
        '',
      ].join('\n'),
    );
    const missing = await runCli(['users', 'add', '--email', 'new@example.net'], { env });
    expect(missing.stderr).toBe(
      'archway users: A customer needs the domain of their installation.\narchway users: A customer needs a plan.\n',
    );
    expect(await users()).toEqual(before);
    expect(existing.email).toBe('taken@example.net');
    expect(await queued()).toEqual([]);
  });

  it('explains its usage and refuses a wrong action or option', async () => {
    const help = await runCli(['users', '--help'], { env });
    expect(help.stdout).toMatch(/^Usage:\n {2}archway users add --email ADDRESS --domain DOMAIN --plan PLAN/);
    const wrong = await runCli(['users', 'delete'], { env });
    expect(wrong.code).toBe(64);
    expect(wrong.stderr).toContain(
      'Unknown action "delete" for "archway users": use add, import, set-email, set-host, suspend, resume, show or invite.',
    );
    const stray = await runCli(['users', 'import', 'x.csv', '--plan', 'small'], { env });
    expect(stray.code).toBe(64);
    expect(stray.stderr).toContain('"archway users import" does not take --plan.');
  });
});

describe('archway users import', () => {
  it('imports a good file, quoted fields and all, and invites every account', async () => {
    const file = csv(
      'good.csv',
      '\uFEFFemail,domain,plan,role,paypal_subscription_id,backup_host\r\n' +
        'anna@example.net,anna.example.org,small,,I-AAAA1111,backup-1.example.net\r\n' +
        '"bruno@example.net","bruno.example.org","large","customer","",""\r\n' +
        'boss@example.net,,,operator,,\r\n',
    );
    const result = await runCli(['users', 'import', file], { env });
    expect(result.stderr).toBe('');
    expect(result.stdout).toBe('Imported 3 accounts; their invitations are queued.\n');
    expect(result.code).toBe(0);
    const imported = (await users()).filter((u) => ['anna@example.net', 'bruno@example.net', 'boss@example.net'].includes(u.email));
    expect(imported).toEqual([
      {
        email: 'anna@example.net',
        role: 'customer',
        domain: 'anna.example.org',
        plan: 'small',
        status: 'invited',
        backup_host: 'backup-1.example.net',
        paypal_subscription_id: 'I-AAAA1111',
      },
      {
        email: 'boss@example.net',
        role: 'operator',
        domain: null,
        plan: null,
        status: 'invited',
        backup_host: null,
        paypal_subscription_id: null,
      },
      {
        email: 'bruno@example.net',
        role: 'customer',
        domain: 'bruno.example.org',
        plan: 'large',
        status: 'invited',
        backup_host: null,
        paypal_subscription_id: null,
      },
    ]);
    const sent = await deliverMail(world);
    expect(sent.map(recipients).sort()).toEqual([['anna@example.net'], ['boss@example.net'], ['bruno@example.net']]);
  });

  it('reports every bad row by its line and writes nothing at all', async () => {
    await createUser(world.app, { email: 'already@example.net' });
    const before = await users();
    const tokensBefore = await db().selectFrom('account_tokens').select('id').execute();
    const file = csv(
      'bad.csv',
      [
        'email,domain,plan,role',
        'fine1@example.net,fine1.example.org,small,customer', // 2: fine
        'not-an-address,x.example.org,small,customer', // 3
        'fine2@example.net,bad_domain!,small,customer', // 4
        'fine3@example.net,fine3.example.org,Huge Plan,customer', // 5
        'fine4@example.net,fine4.example.org,small,root', // 6
        'FINE1@example.net,dup.example.org,small,customer', // 7: same as line 2
        '"multi', // 8-9: a quoted field over two lines, then too few fields
        'line@example.net",x.example.org,small',
        'already@example.net,already.example.org,small,customer', // 10: fine in itself, already in the portal
        '',
      ].join('\n'),
    );
    const result = await runCli(['users', 'import', file], { env });
    expect(result.code).toBe(65);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe(
      [
        `archway users: nothing was imported from ${file}:`,
        '  line 3: "not-an-address" is not an email address like someone@example.net.',
        '  line 4: "bad_domain!" is not a domain name like social.example.net.',
        '  line 5: "Huge Plan" is not a plan name: use up to 40 letters, digits, dots, dashes or underscores.',
        '  line 6: "root" is not a role: use customer or operator.',
        '  line 7: the email address FINE1@example.net is already on line 2 of this file.',
        '  line 8: has 3 fields but the header has 4.',
        '',
      ].join('\n'),
    );
    // Fix those rows: the address already in the portal is the last problem, still nothing written.
    const second = csv(
      'bad2.csv',
      'email,domain,plan\nfine1@example.net,fine1.example.org,small\nalready@example.net,already.example.org,small\n',
    );
    const clash = await runCli(['users', 'import', second], { env });
    expect(clash.code).toBe(65);
    expect(clash.stderr).toBe(
      `archway users: nothing was imported from ${second}:\n  line 3: there is already an account with the email address already@example.net.\n`,
    );
    expect(await users()).toEqual(before);
    expect(await db().selectFrom('account_tokens').select('id').execute()).toEqual(tokensBefore);
    expect(await queued()).toEqual([]);
  });

  it('names a broken header, an empty file, unclosed quotes and a missing file', async () => {
    const header = await runCli(['users', 'import', csv('h.csv', 'mail,domain,plan\nx@example.net,x.example.org,small\n')], { env });
    expect(header.stderr).toContain(
      '  line 1: unknown column "mail"; the columns are email, domain, plan, role, paypal_subscription_id, backup_host.\n  line 1: the header has no "email" column.\n',
    );
    const empty = await runCli(['users', 'import', csv('e.csv', '')], { env });
    expect(empty.stderr).toContain('The file is empty: it needs a header row and one row per account.');
    const onlyHeader = await runCli(['users', 'import', csv('o.csv', 'email,domain,plan\n')], { env });
    expect(onlyHeader.stderr).toContain('line 1: the file has a header but no accounts.');
    const quote = await runCli(['users', 'import', csv('q.csv', 'email,domain,plan\n"x@example.net,x.example.org,small\n')], { env });
    expect(quote.stderr).toContain('line 2: a quoted field is not closed');
    const missing = await runCli(['users', 'import', path.join(dir, 'nope.csv')], { env });
    expect(missing.code).toBe(66);
    expect(missing.stderr).toBe(`archway users: cannot read ${path.join(dir, 'nope.csv')} (ENOENT).\n`);
  });
});

describe('archway users set-email', () => {
  it('changes the address, writes the audit log, and tells the old and the new address', async () => {
    const user = await createUser(world.app, { email: 'old-address@example.net' });
    const result = await runCli(['users', 'set-email', '--email', 'OLD-address@example.net', '--new-email', 'new-address@example.net'], {
      env,
    });
    expect(result.stderr).toBe('');
    expect(result.stdout).toBe(
      'Changed old-address@example.net to new-address@example.net. Both addresses are told; the change is in the audit log.\n',
    );
    expect(result.code).toBe(0);
    expect((await findUserByEmail(db(), 'new-address@example.net'))?.id).toBe(user.id);
    expect(await findUserByEmail(db(), 'old-address@example.net')).toBeNull();
    const audit = await db()
      .selectFrom('audit_log')
      .select(['actor', 'action', 'subject', 'detail'])
      .where('action', '=', 'user.email_changed')
      .execute();
    expect(audit).toEqual([
      {
        actor: 'cli',
        action: 'user.email_changed',
        subject: user.id,
        detail: { from: 'old-address@example.net', to: 'new-address@example.net' },
      },
    ]);
    const sent = await deliverMail(world);
    expect(sent.map(recipients).sort()).toEqual([['new-address@example.net'], ['old-address@example.net']]);
    const toOld = sent.find((m) => recipients(m)[0] === 'old-address@example.net')!;
    expect(toOld.subject).toBe('The email address of your Archway account was changed');
    expect(toOld.text).toContain('from old-address@example.net to new-address@example.net');
    expect(toOld.text).toContain('If you did not ask for this change, reply to this message at once.');
    // The new address signs in with the same password; the old one does not.
    expect((await new WebClient(world.app).signIn('new-address@example.net', PASSWORD)).status).toBe(303);
    expect((await new WebClient(world.app).signIn('old-address@example.net', PASSWORD)).status).toBe(401);
  });

  it("ends every session, remember-me login and open link sent to the old address, and re-sends ready archives' links", async () => {
    const user = await createUser(world.app, { email: 'leaving@example.net' });
    const browser = new WebClient(world.app);
    await browser.get('/sign-in');
    expect((await browser.post('/sign-in', { email: user.email, password: PASSWORD, remember: 'on' })).status).toBe(303);
    expect(await db().selectFrom('remember_logins').select('id').where('user_id', '=', user.id).execute()).toHaveLength(1);
    const asker = new WebClient(world.app, { remoteAddress: '192.0.2.200' });
    await asker.get('/forgot-password');
    await asker.post('/forgot-password', { email: user.email });
    await world.app.ctx.background.settle();
    const [reset] = (await deliverMail(world)).filter((m) => recipients(m)[0] === user.email);
    const archive = await db()
      .insertInto('archive_requests')
      .values({
        user_id: user.id,
        customer: user.domain!,
        snapshot: 'daily.0',
        archive_id: 'b7'.repeat(16),
        state: 'ready',
        notified_at: new Date(),
      })
      .returning('id')
      .executeTakeFirstOrThrow();

    const result = await runCli(['users', 'set-email', '--email', user.email, '--new-email', 'arriving@example.net'], { env });
    expect(result.code).toBe(0);

    expect((await browser.get('/account')).status).toBe(303);
    expect(await db().selectFrom('sessions').select('id').where('user_id', '=', user.id).execute()).toEqual([]);
    expect(await db().selectFrom('remember_logins').select('id').where('user_id', '=', user.id).execute()).toEqual([]);
    const mailbox = new WebClient(world.app);
    await mailbox.get(linkIn(reset!));
    expect((await mailbox.get('/set-password')).body).not.toContain('name="password"');
    const due = await db().selectFrom('archive_requests').select('notify_due_at').where('id', '=', archive.id).executeTakeFirstOrThrow();
    expect(due.notify_due_at).not.toBeNull();
  });

  it('gives an invited user a new invitation at the new address; the old one stops working', async () => {
    await runCli(['users', 'add', '--email', 'invited-old@example.net', '--domain', 'invited-move.example.org', '--plan', 'small'], {
      env,
    });
    const oldInvite = (await deliverMail(world)).find((m) => recipients(m)[0] === 'invited-old@example.net');
    const result = await runCli(['users', 'set-email', '--email', 'invited-old@example.net', '--new-email', 'invited-new@example.net'], {
      env,
    });
    expect(result.code).toBe(0);
    const sent = await deliverMail(world);
    const invite = sent.find((m) => recipients(m)[0] === 'invited-new@example.net' && m.text?.includes('/set-password?token='));
    expect(invite).toBeDefined();
    const stale = new WebClient(world.app);
    await stale.get(linkIn(oldInvite!));
    expect((await stale.get('/set-password')).body).not.toContain('name="password"');
    const fresh = new WebClient(world.app);
    await fresh.get(linkIn(invite!));
    expect((await fresh.get('/set-password')).body).toContain('name="password"');
  });

  it('refuses an unknown account, an address another account has, and a malformed address, changing nothing', async () => {
    const a = await createUser(world.app, { email: 'keep-a@example.net' });
    await createUser(world.app, { email: 'keep-b@example.net' });
    const unknown = await runCli(['users', 'set-email', '--email', 'ghost@example.net', '--new-email', 'x@example.net'], { env });
    expect(unknown.code).toBe(65);
    expect(unknown.stderr).toBe('archway users: There is no account with the email address ghost@example.net.\n');
    const taken = await runCli(['users', 'set-email', '--email', 'keep-a@example.net', '--new-email', 'Keep-B@example.net'], { env });
    expect(taken.stderr).toBe('archway users: There is already an account with the email address Keep-B@example.net.\n');
    const bad = await runCli(['users', 'set-email', '--email', 'keep-a@example.net', '--new-email', 'nope'], { env });
    expect(bad.stderr).toBe('archway users: "nope" is not an email address like someone@example.net.\n');
    expect((await findUserByEmail(db(), 'keep-a@example.net'))?.id).toBe(a.id);
    expect(await db().selectFrom('audit_log').select('id').where('subject', '=', a.id).execute()).toEqual([]);
    expect(await queued()).toEqual([]);
  });
});

describe('one account per domain', () => {
  it('refuses to add or import a domain another account has, whatever its case or a trailing dot, naming the line', async () => {
    await createUser(world.app, { email: 'owner@example.net', domain: 'shop.example.org' });
    const before = await users();
    const add = await runCli(['users', 'add', '--email', 'intruder@example.net', '--domain', ' Shop.Example.org. ', '--plan', 'small'], {
      env,
    });
    expect(add.code).toBe(65);
    expect(add.stderr).toBe('archway users: There is already an account with the domain shop.example.org.\n');

    const file = csv(
      'domains.csv',
      [
        'email,domain,plan',
        'new1@example.net,fresh.example.org,small',
        'new2@example.net,SHOP.example.org,small',
        'new3@example.net,fresh.example.org.,small',
        '',
      ].join('\n'),
    );
    const result = await runCli(['users', 'import', file], { env });
    expect(result.code).toBe(65);
    expect(result.stderr).toBe(
      `archway users: nothing was imported from ${file}:\n  line 4: the domain fresh.example.org is already on line 2 of this file.\n`,
    );
    const second = csv(
      'domains2.csv',
      'email,domain,plan\nnew1@example.net,fresh.example.org,small\nnew2@example.net,SHOP.example.org,small\n',
    );
    const clash = await runCli(['users', 'import', second], { env });
    expect(clash.stderr).toBe(
      `archway users: nothing was imported from ${second}:\n  line 3: there is already an account with the domain shop.example.org.\n`,
    );
    expect(await users()).toEqual(before);
    expect(await queued()).toEqual([]);
  });

  it('is held by the database too, for a writer that does not normalise', async () => {
    await createUser(world.app, { email: 'first-writer@example.net', domain: 'held.example.org' });
    const raw = db()
      .insertInto('users')
      .values({ email: 'raw-writer@example.net', role: 'customer', domain: ' HELD.example.org.', plan: 'small' });
    await expect(raw.execute()).rejects.toMatchObject({ code: '23505', constraint: 'users_domain_normalised' });
  });
});

describe('an import that fails half-way inside the database', () => {
  it('leaves no account, token or queued mail of the rows before the failure', async () => {
    const { importUsers } = await import('../../src/accounts/user-import.js');
    // A trigger stands for any failure after some rows were already inserted (a lost connection, a constraint);
    // only the tables' owner may add one, not the portal's role.
    const owner = new pg.Client({ connectionString: world.database.ownerUrl });
    await owner.connect();
    await owner.query(`
      create function refuse_third() returns trigger language plpgsql as $$
      begin if new.email = 'third@example.net' then raise exception 'disk full'; end if; return new; end $$;
      create trigger refuse_third before insert on users for each row execute function refuse_third();`);
    await owner.end();
    const before = await users();
    const tokens = await db().selectFrom('account_tokens').select('id').execute();
    const text =
      'email,domain,plan\nfirst@example.net,first.example.org,small\nsecond@example.net,second.example.org,small\nthird@example.net,third.example.org,small\n';
    await expect(
      importUsers(db(), text, {
        publicUrl: 'https://portal.example.net',
        mail: world.app.ctx.mail,
        now: new Date(),
        actor: 'cli',
        fleet: [],
      }),
    ).rejects.toThrow('disk full');
    expect(await users()).toEqual(before);
    expect(await db().selectFrom('account_tokens').select('id').execute()).toEqual(tokens);
    expect(await queued()).toEqual([]);
  });
});

describe('archway users set-host and the fleet', () => {
  it('moves a customer to another host of the fleet, audited, and keeps an archive already made on the old one', async () => {
    const user = await createUser(world.app, { email: 'mover@example.net', domain: 'mover.example.org' });
    await db().updateTable('users').set({ backup_host: 'backup-1.example.net' }).where('id', '=', user.id).execute();
    const old = await db()
      .insertInto('archive_requests')
      .values({ user_id: user.id, customer: 'mover.example.org', backup_host: 'backup-1.example.net', snapshot: 'daily.1', state: 'ready' })
      .returning('id')
      .executeTakeFirstOrThrow();

    const result = await runCli(['users', 'set-host', '--email', 'MOVER@example.net', '--backup-host', 'Backup-2'], { env });
    expect(result.stderr).toBe('');
    expect(result.stdout).toBe('Moved mover@example.net from backup-1.example.net to backup-2; the change is in the audit log.\n');
    expect(result.code).toBe(0);
    expect((await findUserByEmail(db(), 'mover@example.net'))?.backupHost).toBe('backup-2');
    const audit = await db()
      .selectFrom('audit_log')
      .select(['actor', 'action', 'detail'])
      .where('subject', '=', user.id)
      .where('action', '=', 'user.backup_host_changed')
      .execute();
    expect(audit).toEqual([{ actor: 'cli', action: 'user.backup_host_changed', detail: { from: 'backup-1.example.net', to: 'backup-2' } }]);
    // The archive made before the move is still fetched from the host that built it.
    const kept = await db().selectFrom('archive_requests').select('backup_host').where('id', '=', old.id).executeTakeFirstOrThrow();
    expect(kept.backup_host).toBe('backup-1.example.net');

    const again = await runCli(['users', 'set-host', '--email', 'mover@example.net', '--backup-host', 'backup-2'], { env });
    expect(again.code).toBe(65);
    expect(again.stderr).toBe('archway users: mover@example.net is already on the backup host backup-2.\n');
  });

  it('refuses a host outside the fleet, an unknown account, an operator, and a missing option, changing nothing', async () => {
    const user = await createUser(world.app, { email: 'stays@example.net', domain: 'stays.example.org' });
    const cases: Array<[string[], number, string]> = [
      [
        ['--email', 'stays@example.net', '--backup-host', 'backup-9'],
        65,
        'archway users: The backup host "backup-9" is not one of this portal\'s backup hosts (backup-1.example.net, backup-2).\n',
      ],
      [
        ['--email', 'stays@example.net', '--backup-host', '../etc'],
        65,
        'archway users: The backup host "../etc" is not one of this portal\'s backup hosts (backup-1.example.net, backup-2).\n',
      ],
      [
        ['--email', 'nobody@example.net', '--backup-host', 'backup-2'],
        65,
        'archway users: There is no account with the email address nobody@example.net.\n',
      ],
    ];
    for (const [args, code, stderr] of cases) {
      const result = await runCli(['users', 'set-host', ...args], { env });
      expect({ code: result.code, stderr: result.stderr }).toEqual({ code, stderr });
    }
    const missing = await runCli(['users', 'set-host', '--email', 'stays@example.net'], { env });
    expect(missing.code).toBe(64);
    expect(missing.stderr).toContain('archway users set-host needs --email and --backup-host.');
    const operator = await createUser(world.app, { email: 'desk-host@example.net', role: 'operator', domain: null });
    const refused = await runCli(['users', 'set-host', '--email', operator.email, '--backup-host', 'backup-2'], { env });
    expect(refused.stderr).toBe('archway users: desk-host@example.net is an operator; only customers have backups.\n');
    expect((await findUserByEmail(db(), 'stays@example.net'))?.backupHost).toBe(user.backupHost);
  });

  it('refuses to add or import an account on a host the fleet does not have, naming the line', async () => {
    const added = await runCli(
      ['users', 'add', '--email', 'lost@example.net', '--domain', 'lost.example.org', '--plan', 'small', '--backup-host', 'backup-3'],
      { env },
    );
    expect(added.code).toBe(65);
    expect(added.stderr).toBe(
      'archway users: the backup host "backup-3" is not one of this portal\'s backup hosts (backup-1.example.net, backup-2).\n',
    );
    const file = csv(
      'wrong-host.csv',
      'email,domain,plan,backup_host\nok@example.net,ok.example.org,small,backup-2\nlost2@example.net,lost2.example.org,small,backup-3\n',
    );
    const imported = await runCli(['users', 'import', file], { env });
    expect(imported.code).toBe(65);
    expect(imported.stderr).toContain(
      'line 3: the backup host "backup-3" is not one of this portal\'s backup hosts (backup-1.example.net, backup-2).',
    );
    expect((await users()).map((u) => u.email)).not.toEqual(expect.arrayContaining(['ok@example.net']));
  });
});

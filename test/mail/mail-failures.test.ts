import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectDatabase } from '../../src/db/connect.js';
import { deliverDueMail } from '../../src/mail/mail.worker.js';
import { loadConfig } from '../../src/config.js';
import { buildTestApp, TEST_SECRETS, testConfig, type TestApp } from '../harness/app.js';
import { createTestDatabase, type TestDatabase } from '../harness/database.js';
import { createSmtpSink, type SmtpSink } from '../harness/smtp-sink.js';

// The relay's password, with characters that must be percent-encoded in the URL.
const PASSWORD = 'Relay/Pass%word-7f3a9c';
const ENCODED_PASSWORD = encodeURIComponent(PASSWORD);

let database: TestDatabase;
let sink: SmtpSink;

beforeAll(async () => {
  database = await createTestDatabase();
  sink = await createSmtpSink({ credentials: { user: 'archway', password: PASSWORD }, refuseRecipients: ['gone@example.net'] });
});
afterAll(async () => {
  await sink.stop();
  await database.drop();
});

/** Runs one test on an app whose SMTP URL is `smtpUrl`, with an empty queue and sink. */
async function withRelay(smtpUrl: string, run: (subject: TestApp) => Promise<void>): Promise<void> {
  await database.handle.db.deleteFrom('mail_queue').execute();
  sink.clear();
  // Its own connection pool, since closing the app closes the pool it was given.
  const handle = await connectDatabase({ databaseUrl: database.url, dataDir: '/nonexistent' });
  const subject = await buildTestApp(handle, database.url, { ARCHWAY_SMTP_URL: smtpUrl });
  try {
    await run(subject);
  } finally {
    await subject.app.close();
  }
}

async function onlyRow() {
  const rows = await database.handle.db.selectFrom('mail_queue').selectAll().execute();
  expect(rows).toHaveLength(1);
  return rows[0]!;
}

async function tableAsText(): Promise<string> {
  const { rows } = await sql<{ row: string }>`select t::text as row from mail_queue t`.execute(database.handle.db);
  return rows.map((r) => r.row).join('\n');
}

async function expectNoPasswordIn(subject: TestApp): Promise<void> {
  for (const text of [await tableAsText(), subject.logText()]) {
    expect(text).not.toContain(PASSWORD);
    expect(text).not.toContain(ENCODED_PASSWORD);
    expect(text).not.toContain('Pass%');
  }
}

const message = (to: string) => ({ to, template: 'test-message', data: { note: 'relay check' } });
const goodUrl = () => `smtp://archway:${ENCODED_PASSWORD}@127.0.0.1:${sink.port}`;

describe('mail delivery failures', () => {
  it('signs in to the relay with the password from the URL and delivers', async () => {
    await withRelay(goodUrl(), async (subject) => {
      await subject.app.ctx.mail.enqueue(database.handle.db, message('alice@example.net'));
      expect(await deliverDueMail(subject.app.ctx)).toEqual(['sent']);
      expect(sink.messages).toHaveLength(1);
      await expectNoPasswordIn(subject);
    });
  });

  it('gives up at once on a recipient the relay refuses, and records why without the password', async () => {
    await withRelay(goodUrl(), async (subject) => {
      await subject.app.ctx.mail.enqueue(database.handle.db, message('gone@example.net'));
      expect(await deliverDueMail(subject.app.ctx)).toEqual(['failed']);
      const row = await onlyRow();
      expect(row).toMatchObject({ status: 'failed', attempts: 1, body: null, recipient: 'gone@example.net' });
      expect(row.last_error).toMatch(/^EENVELOPE: .*550 Mailbox unavailable: gone@example\.net$/);
      expect(sink.messages).toHaveLength(0);
      expect(subject.logText()).toContain('"msg":"mail given up"');
      expect(subject.logText()).toContain('550 Mailbox unavailable: [recipient]');
      expect(subject.logText()).not.toContain('gone@example.net');
      await expectNoPasswordIn(subject);
    });
  });

  it('keeps retrying when the relay refuses the login, and records why without the password', async () => {
    await withRelay(`smtp://archway:wrong-${ENCODED_PASSWORD}@127.0.0.1:${sink.port}`, async (subject) => {
      await subject.app.ctx.mail.enqueue(database.handle.db, message('alice@example.net'));
      expect(await deliverDueMail(subject.app.ctx)).toEqual(['retry']);
      const row = await onlyRow();
      expect(row).toMatchObject({ status: 'pending', attempts: 1 });
      expect(row.last_error).toMatch(/^EAUTH: Invalid login: 535 Authentication failed$/);
      expect(subject.logText()).toContain('"msg":"mail not sent; will retry"');
      await expectNoPasswordIn(subject);
    });
  });

  it('in production, sends nothing in clear text to a relay without STARTTLS even when the URL does not ask for requireTLS', async () => {
    await database.handle.db.deleteFrom('mail_queue').execute();
    sink.clear();
    const handle = await connectDatabase({ databaseUrl: database.url, dataDir: '/nonexistent' });
    const mail = { ...testConfig(database.url, { ARCHWAY_SMTP_URL: goodUrl() }).mail, requireTlsByDefault: true };
    const production = {
      NODE_ENV: 'production',
      ARCHWAY_DATABASE_URL: database.url,
      ARCHWAY_PUBLIC_URL: 'https://portal.example.net',
      ARCHWAY_MAIL_FROM: 'Archway <archway@example.net>',
      ARCHWAY_SMTP_URL: goodUrl(),
      ...TEST_SECRETS,
    };
    expect(loadConfig(production).mail.requireTlsByDefault).toBe(true);
    expect(loadConfig({ ...production, NODE_ENV: 'development' }).mail.requireTlsByDefault).toBe(false);
    const subject = await buildTestApp(handle, database.url, { ARCHWAY_SMTP_URL: goodUrl() }, { mail });
    try {
      await subject.app.ctx.mail.enqueue(database.handle.db, message('alice@example.net'));
      expect(await deliverDueMail(subject.app.ctx)).toEqual(['retry']);
      expect((await onlyRow()).last_error).toBe('ETLS: Error upgrading connection with STARTTLS: 500 Error: command not recognized');
      expect(sink.messages).toHaveLength(0);
    } finally {
      await subject.app.close();
    }
  });

  it('sends nothing in clear text when the URL asks for requireTLS and the relay offers no STARTTLS', async () => {
    await withRelay(`${goodUrl()}?requireTLS=true`, async (subject) => {
      await subject.app.ctx.mail.enqueue(database.handle.db, message('alice@example.net'));
      expect(await deliverDueMail(subject.app.ctx)).toEqual(['retry']);
      const row = await onlyRow();
      expect(row).toMatchObject({ status: 'pending', attempts: 1 });
      expect(row.last_error).toBe('ETLS: Error upgrading connection with STARTTLS: 500 Error: command not recognized');
      expect(sink.messages).toHaveLength(0);
      await expectNoPasswordIn(subject);
    });
  });

  it('records a malformed SMTP URL as the reason, never repeating the URL or its password', async () => {
    for (const badUrl of [
      `smtp://archway:${ENCODED_PASSWORD}@[::1`,
      `smtp://archway:${ENCODED_PASSWORD}@127.0.0.1:notaport`,
      `smtp://archway:${PASSWORD}@127.0.0.1:25`,
    ]) {
      await withRelay(badUrl, async (subject) => {
        await subject.app.ctx.mail.enqueue(database.handle.db, message('alice@example.net'));
        expect(await deliverDueMail(subject.app.ctx)).toEqual(['retry']);
        const row = await onlyRow();
        expect(row).toMatchObject({
          status: 'pending',
          attempts: 1,
          last_error: 'ARCHWAY_SMTP_URL is not a valid smtp:// or smtps:// URL',
        });
        await expectNoPasswordIn(subject);
      });
    }
  });
});

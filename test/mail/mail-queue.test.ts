import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { connectDatabase } from '../../src/db/connect.js';
import { InvalidRecipient, sendMailNow } from '../../src/mail/mail.service.js';
import { UnknownMailTemplate } from '../../src/mail/mail.renderer.js';
import { MailNotSent } from '../../src/mail/mail.transport.js';
import { deliverDueMail, startMailWorker } from '../../src/mail/mail.worker.js';
import { buildTestApp } from '../harness/app.js';
import { startPortalWorld, type PortalWorld } from '../harness/world.js';
import { eventually } from '../harness/eventually.js';
import type { SmtpSink } from '../harness/smtp-sink.js';
import { workerClock } from './worker-clock.js';

let subject: PortalWorld;
let sink: SmtpSink;
/** The worker's clock; each test starts it just ahead of the database's, so new mail is due. */
let clock: Date;
const now = () => clock;

beforeAll(async () => {
  subject = await startPortalWorld({ smtp: 'up' });
  sink = subject.sink;
});
afterAll(async () => subject.close());
beforeEach(async () => {
  await subject.database.handle.db.deleteFrom('mail_queue').execute();
  await sink.start();
  sink.clear();
  clock = new Date(Date.now() + 1_000);
});

const db = () => subject.database.handle.db;

function queueRows() {
  return db().selectFrom('mail_queue').selectAll().orderBy('created_at').execute();
}

/** Every column of every row, as PostgreSQL prints it: what someone reading the table would see. */
async function tableAsText(): Promise<string> {
  const { rows } = await sql<{ row: string }>`select t::text as row from mail_queue t`.execute(db());
  return rows.map((r) => r.row).join('\n');
}

function testMessage(note: string, to = 'alice@example.net') {
  return { to, template: 'test-message', data: { note } };
}

describe('the mail queue', () => {
  it('delivers a message queued while the SMTP server is down exactly once, when the server is back', async () => {
    await sink.stop();
    await subject.app.ctx.mail.enqueue(db(), testMessage('queued while the relay was down'));
    const worker = workerClock(now);
    const stopWorker = startMailWorker(subject.app.ctx, { now: worker.now, pollIntervalMs: 20 });
    try {
      // Recorded, not only claimed: a claimed row carries its lease as next_attempt_at until the outcome is written.
      await eventually('the first attempt to be recorded', async () => {
        const [row] = await queueRows();
        return row?.attempts === 1 && row.last_error !== null;
      });
      const [waiting] = await queueRows();
      expect(waiting).toMatchObject({
        status: 'pending',
        attempts: 1,
        next_attempt_at: new Date(clock.getTime() + 60_000),
        finished_at: null,
      });
      expect(waiting?.last_error).toMatch(/ECONNREFUSED/);

      await sink.start();
      // Proof the worker looked at the queue with the relay up, and left the message for its time.
      await worker.lookedAgain();
      expect(sink.messages).toHaveLength(0);

      clock = new Date(clock.getTime() + 60_000);
      await sink.waitForMessages(1);
      await worker.lookedAgain();
      expect(sink.messages).toHaveLength(1);
      expect(sink.messages[0]?.text).toContain('queued while the relay was down');
      const [sent] = await queueRows();
      expect(sent).toMatchObject({ status: 'sent', attempts: 2, body: null, last_error: null, finished_at: clock });
    } finally {
      await stopWorker();
    }
  });

  it('waits 1, 2, 4 ... minutes (at most an hour) between attempts and gives up after the 10th, about 4 hours on', async () => {
    await sink.stop();
    await subject.app.ctx.mail.enqueue(db(), testMessage('never delivered'));
    const firstAttempt = clock.getTime();
    const waits: number[] = [];
    for (let attempt = 1; attempt <= 9; attempt++) {
      expect(await deliverDueMail(subject.app.ctx, { now })).toEqual(['retry']);
      const [row] = await queueRows();
      expect(row).toMatchObject({ status: 'pending', attempts: attempt });
      const wait = row!.next_attempt_at.getTime() - clock.getTime();
      waits.push(wait);
      clock = new Date(clock.getTime() + wait - 1);
      expect(await deliverDueMail(subject.app.ctx, { now })).toEqual([]);
      clock = new Date(clock.getTime() + 1);
    }
    expect(waits.map((ms) => ms / 60_000)).toEqual([1, 2, 4, 8, 16, 32, 60, 60, 60]);

    expect(await deliverDueMail(subject.app.ctx, { now })).toEqual(['failed']);
    expect((clock.getTime() - firstAttempt) / 3_600_000).toBe(4.05);
    const [given] = await queueRows();
    expect(given).toMatchObject({ status: 'failed', attempts: 10, body: null, finished_at: clock });
    expect(given?.last_error).toMatch(/ECONNREFUSED/);
    expect(subject.logText()).toContain('"msg":"mail given up"');

    // A message given up stays given up, even once the server is back.
    await sink.start();
    clock = new Date(clock.getTime() + 86_400_000);
    expect(await deliverDueMail(subject.app.ctx, { now })).toEqual([]);
    expect(sink.messages).toHaveLength(0);
  });

  it('never sends a message twice when two portal instances run their workers at once', async () => {
    const otherHandle = await connectDatabase({ databaseUrl: subject.database.url, dataDir: '/nonexistent' });
    const other = await buildTestApp(otherHandle, subject.database.url, { ARCHWAY_SMTP_URL: sink.url });
    const count = 60;
    const sentBy = (log: string) => log.split('"msg":"mail sent"').length - 1;
    const sentEarlier = sentBy(subject.logText());
    for (let i = 0; i < count; i++) await subject.app.ctx.mail.enqueue(db(), testMessage(`message ${i}`, `user${i}@example.net`));
    const clocks = [workerClock(), workerClock()];
    const stoppers = [
      startMailWorker(subject.app.ctx, { now: clocks[0]!.now, pollIntervalMs: 10 }),
      startMailWorker(other.app.ctx, { now: clocks[1]!.now, pollIntervalMs: 10 }),
    ];
    try {
      await sink.waitForMessages(count, 15_000);
      // Both workers looked at the queue once more after the last message: a second send would have started by then.
      await Promise.all(clocks.map((clock) => clock.lookedAgain()));
    } finally {
      await Promise.all(stoppers.map((stop) => stop()));
      await other.app.close();
    }
    expect(sink.messages).toHaveLength(count);
    expect(new Set(sink.messages.map((m) => m.messageId)).size).toBe(count);
    expect(new Set(sink.messages.map((m) => m.to && !Array.isArray(m.to) && m.to.text)).size).toBe(count);
    const rows = await queueRows();
    expect(rows.map((r) => [r.status, r.attempts])).toEqual(Array.from({ length: count }, () => ['sent', 1]));
    // Both workers took part, so the claims really met each other.
    const [mine, theirs] = [sentBy(subject.logText()) - sentEarlier, sentBy(other.logText())];
    expect(mine + theirs).toBe(count);
    expect(mine).toBeGreaterThan(0);
    expect(theirs).toBeGreaterThan(0);
  });

  it('never sends a message queued in a transaction that rolled back', async () => {
    await expect(
      db()
        .transaction()
        .execute(async (trx) => {
          await subject.app.ctx.mail.enqueue(trx, testMessage('from a change that failed'));
          throw new Error('the change that caused the mail failed');
        }),
    ).rejects.toThrow('the change that caused the mail failed');
    await db()
      .transaction()
      .execute((trx) => subject.app.ctx.mail.enqueue(trx, testMessage('from a change that committed')));

    expect(await deliverDueMail(subject.app.ctx, { now })).toEqual(['sent']);
    expect(sink.messages.map((m) => m.text)).toEqual([expect.stringContaining('from a change that committed')]);
    expect(await queueRows()).toHaveLength(1);
  });

  it('keeps a secret in the message unreadable while queued and leaves nothing of it after sending', async () => {
    const secret = `https://portal.example.net/reset/${randomBytes(16).toString('hex')}`;
    await subject.app.ctx.mail.enqueue(db(), testMessage(secret));
    expect(await tableAsText()).not.toContain(secret);
    expect(await tableAsText()).not.toContain(secret.slice(-32));

    expect(await deliverDueMail(subject.app.ctx, { now })).toEqual(['sent']);
    expect(sink.messages[0]?.text).toContain(secret);
    expect(sink.messages[0]?.html).toContain(secret);
    const [row] = await queueRows();
    expect(row).toMatchObject({ status: 'sent', body: null, recipient: 'alice@example.net', template: 'test-message' });
    expect(await tableAsText()).not.toContain(secret.slice(-32));
    expect(subject.logText()).not.toContain(secret.slice(-32));
  });

  it('refuses to send a queued body moved to another recipient, and gives it up', async () => {
    await subject.app.ctx.mail.enqueue(db(), testMessage('meant for alice only'));
    await db().updateTable('mail_queue').set({ recipient: 'mallory@example.org' }).execute();

    expect(await deliverDueMail(subject.app.ctx, { now })).toEqual(['failed']);
    expect(sink.messages).toHaveLength(0);
    const [row] = await queueRows();
    expect(row).toMatchObject({ status: 'failed', attempts: 1, body: null });
    expect(row?.last_error).toBe('the queued body cannot be opened (altered, moved to another row, or sealed with another key)');
  });

  it('still sends mail queued before the encryption key changed while the old key is configured, and only then', async () => {
    const newKey = randomBytes(32);
    const rotated = (oldEncryptionKeys: Buffer[]) => ({
      ...subject.app.ctx,
      log: subject.app.log,
      config: { ...subject.app.ctx.config, secrets: { ...subject.app.ctx.config.secrets, encryptionKey: newKey }, oldEncryptionKeys },
    });
    await subject.app.ctx.mail.enqueue(db(), testMessage('queued before the key change'));
    expect(await deliverDueMail(rotated([subject.app.ctx.config.secrets.encryptionKey]), { now })).toEqual(['sent']);
    expect(sink.messages.map((m) => m.text)).toEqual([expect.stringContaining('queued before the key change')]);

    await subject.app.ctx.mail.enqueue(db(), testMessage('queued before the key change, old key forgotten'));
    expect(await deliverDueMail(rotated([]), { now })).toEqual(['failed']);
    expect(sink.messages).toHaveLength(1);
    const failed = (await queueRows()).find((r) => r.status === 'failed');
    expect(failed?.last_error).toBe('the queued body cannot be opened (altered, moved to another row, or sealed with another key)');
  });

  it('sends a plain-text part and an HTML part, and the HTML escapes the data', async () => {
    const note = '<script>alert("x")</script> & <b>bold</b>';
    await subject.app.ctx.mail.enqueue(db(), testMessage(note));
    expect(await deliverDueMail(subject.app.ctx, { now })).toEqual(['sent']);

    const [message] = sink.messages;
    expect(message?.subject).toBe('Archway test message');
    expect(message?.from?.value).toEqual([{ name: 'Archway', address: 'archway@localhost' }]);
    expect(message && !Array.isArray(message.to) ? message.to?.text : null).toBe('alice@example.net');
    expect(message?.headers.get('auto-submitted')).toBe('auto-generated');
    const [row] = await queueRows();
    expect(message?.messageId).toBe(`<${row?.id}@localhost>`);
    expect(message?.text).toContain(`Note from the operator: ${note}\n`);
    expect(message?.text).toContain('\n-- \nArchway · your backups, on request');
    expect(message?.html).toContain(
      '<p>Note from the operator: &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;</p>',
    );
    expect(message?.html).not.toContain('<script>');
    expect(message?.html).not.toContain('<b>bold');
    expect(message?.html).toContain('<title>Archway test message</title>');
  });

  it('refuses an unknown template, a template name with a path in it, and a recipient that is not one plain address, queueing nothing', async () => {
    await expect(
      subject.app.ctx.mail.enqueue(db(), { to: 'alice@example.net', template: 'no-such-template', data: {} }),
    ).rejects.toBeInstanceOf(UnknownMailTemplate);
    await expect(subject.app.ctx.mail.enqueue(db(), { to: 'alice@example.net', template: '../layout', data: {} })).rejects.toBeInstanceOf(
      UnknownMailTemplate,
    );
    await expect(subject.app.ctx.mail.enqueue(db(), { to: 'alice@example.net', template: 'layout.txt', data: {} })).rejects.toBeInstanceOf(
      UnknownMailTemplate,
    );
    for (const to of [
      'alice@example.net\r\nBcc: mallory@example.org',
      'alice@example.net, mallory@example.org',
      'Alice <alice@example.net>',
      'alice',
      '',
    ]) {
      await expect(subject.app.ctx.mail.enqueue(db(), testMessage('x', to))).rejects.toBeInstanceOf(InvalidRecipient);
    }
    expect(await queueRows()).toEqual([]);
  });

  it('deletes finished rows after 30 days and keeps younger ones and every waiting message', async () => {
    const daysAgo = (days: number) => new Date(clock.getTime() - days * 86_400_000);
    const finished = (id: string, status: 'sent' | 'failed', days: number) => ({
      id,
      recipient: 'alice@example.net',
      template: 'test-message',
      body: null,
      status,
      attempts: 1,
      finished_at: daysAgo(days),
    });
    await db()
      .insertInto('mail_queue')
      .values([
        finished('00000000-0000-4000-8000-000000000001', 'sent', 31),
        finished('00000000-0000-4000-8000-000000000002', 'failed', 31),
        finished('00000000-0000-4000-8000-000000000003', 'sent', 29),
      ])
      .execute();
    await sink.stop();
    await subject.app.ctx.mail.enqueue(db(), testMessage('still waiting'));

    const stopWorker = startMailWorker(subject.app.ctx, { now, pollIntervalMs: 20 });
    try {
      await eventually('the purge of mail finished over 30 days ago', async () => (await queueRows()).length === 2);
    } finally {
      await stopWorker();
    }
    const left = await db().selectFrom('mail_queue').select(['id', 'status']).orderBy('id').execute();
    expect(left).toEqual([
      { id: '00000000-0000-4000-8000-000000000003', status: 'sent' },
      { id: expect.not.stringMatching(/^00000000-/), status: 'pending' },
    ]);
  });

  it('sends a message at once with sendMailNow and stores nothing of it', async () => {
    const secret = randomBytes(16).toString('hex');
    await sendMailNow(subject.app.ctx, testMessage(`download link ${secret}`));
    expect(sink.messages).toHaveLength(1);
    expect(sink.messages[0]?.text).toContain(secret);
    expect(await queueRows()).toEqual([]);

    await sink.stop();
    const failure = await sendMailNow(subject.app.ctx, testMessage(`download link ${secret}`)).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(MailNotSent);
    expect((failure as MailNotSent).reason).toMatch(/^ESOCKET: connect ECONNREFUSED 127\.0\.0\.1:\d+$/);
    expect(await queueRows()).toEqual([]);
  });
});

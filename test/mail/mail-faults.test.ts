// The mail worker against misbehaving SMTP servers and a lost database: bounded, no transaction across the call, one email.
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectDatabase } from '../../src/db/connect.js';
import { deliverDueMail } from '../../src/mail/mail.worker.js';
import { buildTestApp, type TestApp } from '../harness/app.js';
import { createTestDatabase, type TestDatabase } from '../harness/database.js';
import { startScriptedSmtp, type ScriptedSmtp } from '../harness/smtp-scripted.js';

let database: TestDatabase;

beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(async () => {
  await database.drop();
});

async function withRelay(smtp: ScriptedSmtp, run: (subject: TestApp) => Promise<void>): Promise<void> {
  await database.handle.db.deleteFrom('mail_queue').execute();
  const handle = await connectDatabase({ databaseUrl: database.url, dataDir: '/nonexistent' });
  const subject = await buildTestApp(handle, database.url, { ARCHWAY_SMTP_URL: smtp.url });
  try {
    await run(subject);
  } finally {
    await subject.app.close();
    await smtp.close();
  }
}

/** Sessions of this test's database that sit inside an open transaction. */
async function sessionsInTransaction(): Promise<number> {
  const { rows } = await sql<{ n: number }>`
    select count(*)::int as n from pg_stat_activity where datname = current_database() and state like 'idle in transaction%'`.execute(
    database.handle.db,
  );
  return rows[0]!.n;
}

describe('the mail worker and a misbehaving relay', () => {
  it('ends a delivery to a relay that drips "250-" lines forever at its deadline, holding no transaction meanwhile', async () => {
    const smtp = await startScriptedSmtp({ mode: 'drip' });
    await withRelay(smtp, async (subject) => {
      await subject.app.ctx.mail.enqueue(subject.app.ctx.database.db, { to: 'drip@example.net', template: 'test-message', data: {} });
      const delivering = deliverDueMail(subject.app.ctx, { deliveryDeadlineMs: 2_000 });
      await smtp.waitForStalls(1);
      expect(await sessionsInTransaction()).toBe(0);
      expect(await delivering).toEqual(['retry']);
      const row = await database.handle.db.selectFrom('mail_queue').selectAll().executeTakeFirstOrThrow();
      expect(row).toMatchObject({ status: 'pending', attempts: 1, last_error: 'the SMTP server did not finish the delivery within 2 s' });
      expect(row.body).not.toBeNull();
    });
  }, 30_000);

  it('sends once when the database drops every connection between the relay\'s "250" and the record', async () => {
    const smtp = await startScriptedSmtp({
      mode: 'accept',
      // A database restart at the worst moment: after the message is accepted, before the worker records it.
      beforeAccept: async () => {
        await sql`select pg_terminate_backend(pid) from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()`.execute(
          database.handle.db,
        );
      },
    });
    await withRelay(smtp, async (subject) => {
      await subject.app.ctx.mail.enqueue(subject.app.ctx.database.db, { to: 'once@example.net', template: 'test-message', data: {} });
      expect(await deliverDueMail(subject.app.ctx)).toEqual(['sent']);
      // Later runs (the lease long over) find nothing more to send.
      expect(await deliverDueMail(subject.app.ctx, { now: () => new Date(Date.now() + 24 * 3_600_000) })).toEqual([]);
      expect(smtp.received).toHaveLength(1);
      const row = await database.handle.db.selectFrom('mail_queue').selectAll().executeTakeFirstOrThrow();
      expect(row).toMatchObject({ status: 'sent', attempts: 1, body: null });
    });
  }, 30_000);
});

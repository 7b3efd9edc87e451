// Shared set-up for the accounts tests: an app on its own database whose mail goes to an SMTP sink.
import type { ParsedMail } from 'mailparser';
import type { FastifyInstance } from 'fastify';
import { deliverDueMail } from '../../src/mail/mail.worker.js';
import { buildTestApp, type TestApp } from '../harness/app.js';
import { createTestDatabase, type TestDatabase } from '../harness/database.js';
import { createSmtpSink, type SmtpSink } from '../harness/smtp-sink.js';

export interface AccountsWorld {
  database: TestDatabase;
  subject: TestApp;
  app: FastifyInstance;
  sink: SmtpSink;
  close(): Promise<void>;
}

export async function startWorld(env: Record<string, string> = {}): Promise<AccountsWorld> {
  const database = await createTestDatabase();
  const sink = await createSmtpSink();
  const subject = await buildTestApp(database.handle, database.url, {
    ARCHWAY_SMTP_URL: sink.url,
    ARCHWAY_PUBLIC_URL: 'https://portal.example.net',
    ...env,
  });
  await subject.app.ready();
  return {
    database,
    subject,
    app: subject.app,
    sink,
    async close() {
      await subject.app.close();
      await sink.stop();
      await database.drop();
    },
  };
}

/** Sends what the queue holds to the sink, as the mail worker would, and returns the new messages. */
export async function deliverMail(world: AccountsWorld): Promise<ParsedMail[]> {
  const before = world.sink.messages.length;
  await deliverDueMail(world.app.ctx);
  return world.sink.messages.slice(before);
}

/** The set-password link in a message's text, as a path on the portal. */
export function linkIn(message: ParsedMail): string {
  const match = /https:\/\/portal\.example\.net(\/set-password\?token=[A-Za-z0-9_.-]+)/.exec(message.text ?? '');
  if (!match?.[1]) throw new Error(`no set-password link in: ${message.text}`);
  return match[1];
}

export function recipients(message: ParsedMail): string[] {
  const to = Array.isArray(message.to) ? message.to : message.to ? [message.to] : [];
  return to.flatMap((a) => a.value.map((v) => v.address ?? ''));
}

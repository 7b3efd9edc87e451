// Queues email for the worker (ctx.mail.enqueue) or sends it at once without storing it (sendMailNow).
import { randomUUID } from 'node:crypto';
import type { Config } from '../config.js';
import type { Db } from '../db/database.js';
import { renderMail } from './mail.renderer.js';
import { mailQueueKey, seal } from './mail-seal.js';
import { createMailTransport, MailNotSent } from './mail.transport.js';

export interface MailMessage {
  to: string;
  /** A file pair in views/emails/: `<template>.txt.eta` (first line "Subject: ...") and `.html.eta`. */
  template: string;
  data: Record<string, unknown>;
}

export class InvalidRecipient extends Error {
  constructor() {
    super('The recipient is not a single plain email address.');
    this.name = 'InvalidRecipient';
  }
}

// One address, no display name, no list, no header-breaking characters.
const PLAIN_ADDRESS = /^[^\s@<>,;"()\\]+@[^\s@<>,;"()\\]+$/;

/** Queues email sealed under the configured key; one per AppContext (ctx.mail), made from the config's secrets. */
export interface MailQueue {
  /**
   * Renders the message now (a template error fails the caller's change) and queues it sealed.
   * Pass the caller's transaction: the mail is then queued only if the change that caused it commits.
   */
  enqueue(db: Db, message: MailMessage): Promise<void>;
}

export function createMailQueue(secrets: { encryptionKey: Buffer }): MailQueue {
  const key = mailQueueKey(secrets.encryptionKey);
  return { enqueue: (db, message) => enqueueSealed(key, db, message) };
}

function checkRecipient(to: string): string {
  if (!PLAIN_ADDRESS.test(to) || to.length > 254) throw new InvalidRecipient();
  return to;
}

async function enqueueSealed(key: Buffer, db: Db, message: MailMessage): Promise<void> {
  const recipient = checkRecipient(message.to);
  const rendered = renderMail(message.template, message.data);
  const id = randomUUID();
  await db
    .insertInto('mail_queue')
    .values({
      id,
      recipient,
      template: message.template,
      body: seal(key, id, recipient, JSON.stringify(rendered)),
      // The worker compares with this process's clock (milliseconds); the database's now() has microseconds.
      next_attempt_at: new Date(),
    })
    .execute();
}

/**
 * Sends one message right away and stores nothing of it, for content that must never rest in
 * the database (a download link). Throws MailNotSent (reason without secrets) if it fails.
 */
export async function sendMailNow(app: { config: Config }, message: MailMessage): Promise<void> {
  const recipient = checkRecipient(message.to);
  const rendered = renderMail(message.template, message.data);
  const transport = createMailTransport(app.config.mail);
  try {
    await transport.deliver(randomUUID(), recipient, rendered);
  } finally {
    transport.close();
  }
}

export { MailNotSent };

/** Messages queued and not yet sent (sealed under the key in use when they were queued). */
export async function countPendingMail(db: Db): Promise<number> {
  const row = await db
    .selectFrom('mail_queue')
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .where('status', '=', 'pending')
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

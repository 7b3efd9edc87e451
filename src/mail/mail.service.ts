// Queues email for the worker (enqueueMail) or sends it at once without storing it (sendMailNow).
import { randomUUID } from 'node:crypto';
import type { Config, Secrets } from '../config.js';
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

export class MailNotConfigured extends Error {
  constructor() {
    super('The mail queue has no key: buildApp() must run configureMailQueue(config) first.');
    this.name = 'MailNotConfigured';
  }
}

// One address, no display name, no list, no header-breaking characters.
const PLAIN_ADDRESS = /^[^\s@<>,;"()\\]+@[^\s@<>,;"()\\]+$/;

let queueKey: Buffer | null = null;

/**
 * enqueueMail's signature is the callers' seam (db, message), so the key it seals with is set
 * once per process by buildApp(). The worker derives the same key from its app's config; two apps
 * with different encryption keys in one process (never outside tests) would not understand each other.
 */
export function configureMailQueue(config: { secrets: Secrets }): void {
  queueKey = mailQueueKey(config.secrets.encryptionKey);
}

function currentMailQueueKey(): Buffer {
  if (queueKey === null) throw new MailNotConfigured();
  return queueKey;
}

function checkRecipient(to: string): string {
  if (!PLAIN_ADDRESS.test(to) || to.length > 254) throw new InvalidRecipient();
  return to;
}

/**
 * Renders the message now (a template error fails the caller's change) and queues it sealed.
 * Pass the caller's transaction: the mail is then queued only if the change that caused it commits.
 */
export async function enqueueMail(db: Db, message: MailMessage): Promise<void> {
  const recipient = checkRecipient(message.to);
  const rendered = renderMail(message.template, message.data);
  const id = randomUUID();
  await db
    .insertInto('mail_queue')
    .values({
      id,
      recipient,
      template: message.template,
      body: seal(currentMailQueueKey(), id, recipient, JSON.stringify(rendered)),
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

// Delivers a rendered message: over SMTP with nodemailer, or as an .eml file in first-look mode.
import { chmod, mkdir, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import nodemailer, { type Transporter } from 'nodemailer';
import type SMTPTransport from 'nodemailer/lib/smtp-transport/index.js';
import type { MailConfig } from '../config.js';
import type { RenderedMail } from './mail.renderer.js';

export interface MailTransport {
  deliver(id: string, recipient: string, mail: RenderedMail): Promise<void>;
  close(): void;
}

/** A failed delivery; `reason` is safe to store and log (no password), `permanent` means retrying cannot help. */
export class MailNotSent extends Error {
  constructor(
    readonly reason: string,
    readonly permanent: boolean,
  ) {
    super(`The message was not sent: ${reason}`);
    this.name = 'MailNotSent';
  }
}

// Short enough that a dead server fails an attempt quickly; long enough for a slow relay.
const SMTP_TIMEOUTS = { connectionTimeout: 10_000, greetingTimeout: 10_000, socketTimeout: 30_000 };
/**
 * The whole delivery, connect to final "250", ends within this: the socket timeout restarts at
 * every byte, so a relay that drips continuation lines would otherwise hold the sender forever.
 */
export const DELIVERY_DEADLINE_MS = 60_000;
const MAX_REASON_LENGTH = 500;

export function createMailTransport(mail: MailConfig, deadlineMs = DELIVERY_DEADLINE_MS): MailTransport {
  return mail.smtpUrl === null ? outboxTransport(mail) : smtpTransport(mail, mail.smtpUrl, deadlineMs);
}

function envelope(mail: MailConfig, id: string, recipient: string, rendered: RenderedMail) {
  return {
    from: mail.from,
    to: recipient,
    subject: rendered.subject,
    text: rendered.text,
    html: rendered.html,
    // The sender's domain names the message, as RFC 5322 asks; the id matches the queue row.
    messageId: `<${id}@${/@([^\s@<>]+)>?\s*$/.exec(mail.from)?.[1] ?? 'archway.invalid'}>`,
    // Tells vacation responders and ticket systems not to answer.
    headers: { 'Auto-Submitted': 'auto-generated' },
  };
}

function smtpTransport(mail: MailConfig, smtpUrl: string, deadlineMs: number): MailTransport {
  let transporter: Transporter | null = null;
  return {
    async deliver(id, recipient, rendered) {
      let timer: NodeJS.Timeout | undefined;
      try {
        // Created on first use, inside the try: a malformed URL becomes a recorded failure, not a crash.
        transporter ??= nodemailer.createTransport({
          ...smtpOptions(smtpUrl, mail.requireTlsByDefault),
          ...SMTP_TIMEOUTS,
          logger: false,
          debug: false,
        });
        const deadline = new Promise<never>((_resolve, reject) => {
          timer = setTimeout(
            () => reject(new MailNotSent(`the SMTP server did not finish the delivery within ${deadlineMs / 1000} s`, false)),
            deadlineMs,
          );
        });
        await Promise.race([transporter.sendMail(envelope(mail, id, recipient, rendered)), deadline]);
      } catch (error) {
        if (error instanceof MailNotSent) throw error;
        throw new MailNotSent(failureReason(error, smtpUrl), isPermanent(error));
      } finally {
        clearTimeout(timer);
      }
    },
    close() {
      transporter?.close();
    },
  };
}

/**
 * Reads smtp[s]://[user:password@]host[:port][?requireTLS=true|false] with the WHATWG parser. The URL
 * never reaches nodemailer: its legacy parser warns on stderr with the whole URL, password included.
 * Without the parameter, requireTLS is `requireTlsByDefault` (on in production).
 */
export function smtpOptions(smtpUrl: string, requireTlsByDefault = false): SMTPTransport.Options {
  try {
    const url = new URL(smtpUrl);
    const secure = url.protocol === 'smtps:';
    if ((url.protocol !== 'smtp:' && !secure) || url.hostname === '') throw new Error('not an SMTP URL');
    return {
      host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: url.port === '' ? (secure ? 465 : 587) : Number(url.port),
      secure,
      // smtp:// upgrades with STARTTLS when offered; requireTLS refuses to send (reset links, credentials) if it is not.
      requireTLS: url.searchParams.has('requireTLS') ? url.searchParams.get('requireTLS') === 'true' : requireTlsByDefault,
      ...(url.username === '' ? {} : { auth: { user: decodeURIComponent(url.username), pass: decodeURIComponent(url.password) } }),
    };
  } catch {
    throw new MailNotSent('ARCHWAY_SMTP_URL is not a valid smtp:// or smtps:// URL', false);
  }
}

/** First-look mode: each message becomes `<time>-<id>.eml` (0600) in the outbox directory (0700). */
function outboxTransport(mail: MailConfig): MailTransport {
  const composer = nodemailer.createTransport({ streamTransport: true, buffer: true, newline: 'unix' });
  return {
    async deliver(id, recipient, rendered) {
      try {
        const { message } = (await composer.sendMail(envelope(mail, id, recipient, rendered))) as { message: Buffer };
        await mkdir(mail.outboxDir, { recursive: true, mode: 0o700 });
        await chmod(mail.outboxDir, 0o700);
        const name = outboxFileName(new Date(), id);
        const partial = path.join(mail.outboxDir, `.${name}.partial`);
        // Written aside and renamed, so the outbox viewer never lists half a message.
        await writeFile(partial, message, { mode: 0o600, flag: 'wx' });
        await rename(partial, path.join(mail.outboxDir, name));
      } catch (error) {
        throw new MailNotSent(failureReason(error, null), false);
      }
    },
    close() {
      composer.close();
    },
  };
}

export const OUTBOX_FILE_NAME = /^\d{8}T\d{9}Z-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.eml$/;

export function outboxFileName(at: Date, id: string): string {
  return `${at.toISOString().replace(/[-:.]/g, '')}-${id}.eml`;
}

/** A recipient or message refused with a 5xx reply will be refused again; anything else may pass later. */
function isPermanent(error: unknown): boolean {
  const { code, responseCode } = error as { code?: string; responseCode?: number };
  return (code === 'EENVELOPE' || code === 'EMESSAGE') && typeof responseCode === 'number' && responseCode >= 500;
}

/**
 * The reason stored in the row and logged: the error's code and message with any credentials
 * removed, since some errors repeat the connection URL or the login they tried.
 */
export function failureReason(error: unknown, smtpUrl: string | null): string {
  const { code, message } = error as { code?: unknown; message?: unknown };
  let reason = [typeof code === 'string' ? code : null, typeof message === 'string' ? message : String(error)].filter(Boolean).join(': ');
  for (const secret of credentialsOf(smtpUrl)) reason = reason.split(secret).join('[redacted]');
  reason = reason.replace(/\/\/[^/@\s]*@/g, '//[redacted]@');
  return reason.length > MAX_REASON_LENGTH ? `${reason.slice(0, MAX_REASON_LENGTH)}…` : reason;
}

function credentialsOf(smtpUrl: string | null): string[] {
  if (smtpUrl === null) return [];
  const userinfo = /^[a-z]+:\/\/([^@/]*)@/i.exec(smtpUrl)?.[1];
  if (!userinfo) return [];
  const password = userinfo.includes(':') ? userinfo.slice(userinfo.indexOf(':') + 1) : '';
  const forms = [userinfo, password];
  try {
    forms.push(decodeURIComponent(password));
  } catch {
    // A malformed escape is only removed in its raw form.
  }
  // Longest first, so the whole userinfo goes before its parts; empty strings would match everywhere.
  return [...new Set(forms)].filter((s) => s.length > 0).sort((a, b) => b.length - a.length);
}

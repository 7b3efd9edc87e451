// First look's stand-in for each user's inbox: the outbox messages sent to the signed-in user's own address.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { requireUser } from '../users/guards.js';
import { OUTBOX_FILE_NAME } from './mail.transport.js';
import { outboxFileNames, readOutboxFile, recipientAddresses, type OutboxMessage } from './outbox.reader.js';
import { textWithPortalLinks } from './mail-text-html.js';

/** The newest files looked at for one list, and the most of them shown: the outbox only grows in first look. */
const SCANNED_AT_MOST = 1000;
const LISTED_AT_MOST = 200;

/**
 * The HTML view's policy: no script at all (the mail's markup also sits in a sandbox without
 * scripts), and inline styles allowed so the mail looks as it would in a mail program. The srcdoc
 * frame inherits this policy; every value of the page around it is escaped.
 */
const HTML_VIEW_POLICY = [
  "default-src 'self'",
  "script-src 'none'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "object-src 'none'",
].join('; ');

/** The only markup added to a mail: its links open in the whole window, as they would from a mail program. */
const LINKS_TO_TOP = '<base target="_top">';

/** The mail's HTML for the sandboxed frame, with the base element in its head (or first, when it has none). */
export function framedMailHtml(html: string): string {
  let placed = false;
  const withBase = html.replace(/<head(\s[^>]*)?>/i, (head) => {
    placed = true;
    return head + LINKS_TO_TOP;
  });
  return placed ? withBase : LINKS_TO_TOP + withBase;
}

/** Whether this message was sent to this address and nobody else. */
function isFor(message: OutboxMessage, email: string): boolean {
  const to = recipientAddresses(message.to);
  return to.length === 1 && to[0] === email.toLowerCase();
}

type MessageRequest = FastifyRequest<{ Params: { id: string } }>;

/**
 * Registered only when mail goes to the outbox (first look: server mode must name an SMTP relay),
 * so elsewhere these addresses answer 404. A message that is not the user's answers the same 404
 * as one that does not exist, so ids cannot be probed.
 */
export function registerMailboxRoutes(app: FastifyInstance): void {
  if (app.ctx.config.mail.smtpUrl !== null) return;
  const dir = app.ctx.config.mail.outboxDir;

  async function ownMessageOr404(request: MessageRequest, reply: FastifyReply): Promise<{ id: string; message: OutboxMessage } | null> {
    const { id } = request.params;
    const name = `${id}.eml`;
    // The file name pattern admits no dot-dot, slash or other file; the list check says it exists.
    if (OUTBOX_FILE_NAME.test(name) && (await outboxFileNames(dir)).includes(name)) {
      const message = await readOutboxFile(dir, name);
      if (isFor(message, request.user!.email)) return { id, message };
    }
    reply.callNotFound();
    return null;
  }

  app.get('/mailbox', { preHandler: requireUser }, async (request, reply) => {
    const email = request.user!.email;
    const names = (await outboxFileNames(dir)).slice(0, SCANNED_AT_MOST);
    const all = await Promise.all(names.map(async (name) => ({ id: name.replace(/\.eml$/, ''), ...(await readOutboxFile(dir, name)) })));
    const messages = all.filter((message) => isFor(message, email)).slice(0, LISTED_AT_MOST);
    // Reset and download links live in these messages: no cache keeps them.
    reply.header('cache-control', 'no-store');
    return reply.view('mail/mailbox', { title: 'Mailbox', messages });
  });

  app.get<{ Params: { id: string } }>('/mailbox/:id', { preHandler: requireUser }, async (request, reply) => {
    const found = await ownMessageOr404(request, reply);
    if (found === null) return reply;
    reply.header('cache-control', 'no-store');
    const textHtml = found.message.text === null ? null : textWithPortalLinks(found.message.text, app.ctx.config.publicUrl);
    return reply.view('mail/mailbox-message', {
      title: found.message.subject || 'Message',
      ...found,
      view: 'text',
      textHtml,
      frameHtml: null,
    });
  });

  app.get<{ Params: { id: string } }>('/mailbox/:id/html', { preHandler: requireUser }, async (request, reply) => {
    const found = await ownMessageOr404(request, reply);
    if (found === null) return reply;
    reply.header('cache-control', 'no-store').header('content-security-policy', HTML_VIEW_POLICY);
    const frameHtml = found.message.html === null ? null : framedMailHtml(found.message.html);
    return reply.view('mail/mailbox-message', {
      title: found.message.subject || 'Message',
      ...found,
      view: 'html',
      textHtml: null,
      frameHtml,
    });
  });
}

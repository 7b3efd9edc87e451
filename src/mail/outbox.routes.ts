// The operator's view of the first-look outbox: lists the .eml files and shows one as plain text.
import path from 'node:path';
import type { FastifyPluginAsync, preHandlerAsyncHookHandler } from 'fastify';
import { outboxFileNames, readOutboxFile } from './outbox.reader.js';

export interface OutboxRoutesOptions {
  /** The guard (requireOperator): the outbox holds every user's invitation and reset links. */
  preHandler: preHandlerAsyncHookHandler;
}

const LISTED_AT_MOST = 200;

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c] ?? c);
}

/**
 * The text as HTML, every character escaped, with addresses on this portal turned into links so
 * a newcomer can click the invitation; any other address stays text, so no mail can link elsewhere.
 */
export function textWithPortalLinks(text: string, publicUrl: string): string {
  const origin = publicUrl.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  // An address starts after white space and its origin ends at a path, white space or the end,
  // so neither http://host:30001, http://host:3000@elsewhere nor ...?next=http://host:3000/ matches.
  const portalAddress = new RegExp(`(?<=^|\\s)${origin}(?:/[^\\s<>"']*|(?=\\s|$))`, 'g');
  let html = '';
  let last = 0;
  for (const match of text.matchAll(portalAddress)) {
    const address = escapeHtml(match[0]);
    html += `${escapeHtml(text.slice(last, match.index))}<a href="${address}">${address}</a>`;
    last = match.index + match[0].length;
  }
  return html + escapeHtml(text.slice(last));
}

/**
 * Registered only in first-look mode: with a real SMTP relay there is no outbox, and the
 * addresses answer 404. The mail's HTML is never rendered; its text part is shown escaped.
 */
export const outboxRoutes: FastifyPluginAsync<OutboxRoutesOptions> = async (app, { preHandler }) => {
  if (app.config.mail.smtpUrl !== null) return;
  const dir = app.config.mail.outboxDir;

  app.get('/operator/outbox', { preHandler }, async (request, reply) => {
    const names = (await outboxFileNames(dir)).slice(0, LISTED_AT_MOST);
    const messages = await Promise.all(names.map(async (name) => ({ name, ...(await readOutboxFile(dir, name)) })));
    // The list shows who was invited; no cache should keep it.
    reply.header('cache-control', 'no-store');
    return reply.view('mail/outbox', { title: 'Outbox', messages, outboxDir: path.basename(dir), listPath: request.routeOptions.url });
  });

  app.get<{ Params: { name: string } }>('/operator/outbox/:name', { preHandler }, async (request, reply) => {
    const { name } = request.params;
    // Only a name from the listing reaches the file system: no "..", no slashes, no other files.
    if (!(await outboxFileNames(dir)).includes(name)) return reply.callNotFound();
    const message = await readOutboxFile(dir, name);
    reply.header('cache-control', 'no-store');
    const listPath = (request.routeOptions.url ?? '').replace(/\/:name$/, '');
    const textHtml = message.text === null ? null : textWithPortalLinks(message.text, app.config.publicUrl);
    return reply.view('mail/outbox-message', { title: message.subject || 'Message', name, message, textHtml, listPath });
  });
};

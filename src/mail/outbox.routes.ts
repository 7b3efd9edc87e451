// The operator's view of the first-look outbox: lists the .eml files and shows one as plain text.
import path from 'node:path';
import type { FastifyPluginAsync, preHandlerAsyncHookHandler } from 'fastify';
import { textWithPortalLinks } from './mail-text-html.js';
import { outboxFileNames, readOutboxFile } from './outbox.reader.js';

export interface OutboxRoutesOptions {
  /** The guard (requireOperator): the outbox holds every user's invitation and reset links. */
  preHandler: preHandlerAsyncHookHandler;
}

const LISTED_AT_MOST = 200;

export const outboxRoutes: FastifyPluginAsync<OutboxRoutesOptions> = async (app, { preHandler }) => {
  if (app.ctx.config.mail.smtpUrl !== null) return;
  const dir = app.ctx.config.mail.outboxDir;

  app.get('/operator/outbox', { preHandler }, async (request, reply) => {
    const names = (await outboxFileNames(dir)).slice(0, LISTED_AT_MOST);
    const messages = await Promise.all(names.map(async (name) => ({ name, ...(await readOutboxFile(dir, name)) })));
    return reply.view('mail/outbox', { title: 'Outbox', messages, outboxDir: path.basename(dir), listPath: request.routeOptions.url });
  });

  app.get<{ Params: { name: string } }>('/operator/outbox/:name', { preHandler }, async (request, reply) => {
    const { name } = request.params;
    // Only a name from the listing reaches the file system: no "..", no slashes, no other files.
    if (!(await outboxFileNames(dir)).includes(name)) return reply.callNotFound();
    const message = await readOutboxFile(dir, name);
    const listPath = (request.routeOptions.url ?? '').replace(/\/:name$/, '');
    const textHtml = message.text === null ? null : textWithPortalLinks(message.text, app.ctx.config.publicUrl);
    return reply.view('mail/outbox-message', { title: message.subject || 'Message', name, message, textHtml, listPath });
  });
};

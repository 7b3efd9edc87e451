// GET /operator/requests: the operator's log of archive requests, link issues and downloads, with IPs.
import { formatBytes } from '../format.js';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { readSyncStatus, DEFAULT_HOST } from '../archives/event.repository.js';
import { requireOperator } from '../users/guards.js';
import { eventLabel, formatTime, MAX_FILTER_LENGTH, parseRequestLogQuery, readRequestLog } from './request-log.js';

export function registerRequestLogRoutes(app: FastifyInstance): void {
  app.get<{ Querystring: Record<string, unknown> }>('/operator/requests', { preHandler: requireOperator }, async (request, reply) => {
    const parsed = parseRequestLogQuery(request.query);
    if (!parsed.ok) return render(reply, 400, { filter: parsed.filter, error: parsed.error });
    const { query } = parsed;
    const page = await readRequestLog(app.ctx.database.db, DEFAULT_HOST, query);
    if (!page.found)
      return render(reply, 400, {
        filter: query.filter,
        error: 'That page of the log is no longer there. Start again from the newest requests.',
      });
    const older =
      page.nextBefore === null
        ? null
        : `/operator/requests?${new URLSearchParams({ ...(query.filter !== '' ? { q: query.filter } : {}), before: page.nextBefore }).toString()}`;
    return render(reply, 200, { filter: query.filter, entries: page.entries, olderUrl: older, continued: query.before !== null });
  });

  async function render(
    reply: FastifyReply,
    status: number,
    data: { filter: string; error?: string; entries?: unknown[]; olderUrl?: string | null; continued?: boolean },
  ) {
    const sync = await readSyncStatus(app.ctx.database.db, DEFAULT_HOST);
    // Customer emails and IPs: never kept in a shared cache or the browser's.
    return reply.code(status).view('operator/requests', {
      title: 'Archive requests',
      filter: data.filter,
      maxFilterLength: MAX_FILTER_LENGTH,
      error: data.error ?? null,
      entries: data.entries ?? null,
      olderUrl: data.olderUrl ?? null,
      continued: data.continued ?? false,
      backupHostConfigured: app.ctx.config.backupHost !== null,
      sync,
      eventLabel,
      formatBytes: (n: number | null) => (n === null ? '' : formatBytes(n)),
      formatTime,
    });
  }
}

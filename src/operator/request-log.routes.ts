// GET /operator/requests: the operator's log of archive requests, link issues and downloads, with IPs.
import { formatBytes } from '../format.js';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { readSyncStatuses } from '../archives/event.repository.js';
import { describeAge } from '../archives/archive-format.js';
import { requireOperator } from '../users/guards.js';
import { eventLabel, formatTime, MAX_FILTER_LENGTH, parseRequestLogQuery, readRequestLog } from './request-log.js';

export function registerRequestLogRoutes(app: FastifyInstance): void {
  app.get<{ Querystring: Record<string, unknown> }>('/operator/requests', { preHandler: requireOperator }, async (request, reply) => {
    const parsed = parseRequestLogQuery(request.query);
    if (!parsed.ok) return render(reply, 400, { filter: parsed.filter, error: parsed.error });
    const { query } = parsed;
    const page = await readRequestLog(app.ctx.database.db, query);
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
    // Each fleet host, with its copy's progress; a host no longer in the fleet still shows what was copied from it.
    const rows = await readSyncStatuses(app.ctx.database.db);
    const fleet = app.ctx.backupHosts.names;
    const hosts = [...new Set([...fleet, ...rows.map((r) => r.host)])].map((name) => ({
      name,
      inFleet: fleet.includes(name),
      sync: rows.find((r) => r.host === name) ?? null,
    }));
    // Customer emails and IPs: never kept in a shared cache or the browser's.
    return reply.code(status).view('operator/requests', {
      title: 'Archive requests',
      filter: data.filter,
      maxFilterLength: MAX_FILTER_LENGTH,
      error: data.error ?? null,
      entries: data.entries ?? null,
      olderUrl: data.olderUrl ?? null,
      continued: data.continued ?? false,
      backupHostConfigured: fleet.length > 0,
      hosts,
      // How far behind each host's copy is: the operator spots the host that stopped answering.
      ago: (at: Date) => describeAge(app.ctx.clock.now().getTime() - at.getTime()),
      eventLabel,
      formatBytes: (n: number | null) => (n === null ? '' : formatBytes(n)),
      formatTime,
    });
  }
}

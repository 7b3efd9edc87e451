// GET /operator/log and /operator/log.csv: the request log, filtered by the URL, as a page or an export.
import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { requireOperator } from '../users/guards.js';
import { filterQuery, LOG_KINDS, LOG_OUTCOMES, parseLogQuery, type LogFilterText } from './log-filter.js';
import { findCustomer, readLogPage, readWholeLog, type ResolvedFilter } from './log.repository.js';
import { csvLine, LOG_CSV_HEADER, logRowCsv } from './log-csv.js';
import { describeDetail, logEventLabel } from './log-wording.js';
import { formatTime } from './request-log.js';

type Query = { Querystring: Record<string, unknown> };

export function registerLogRoutes(app: FastifyInstance): void {
  const db = () => app.ctx.database.db;

  /** The filter with its customer looked up; null when the customer names no account. */
  async function resolve(filter: { customer: string } & Omit<ResolvedFilter, 'userId'>): Promise<ResolvedFilter | null> {
    const { customer, ...rest } = filter;
    if (customer === '') return { ...rest, userId: null };
    const account = await findCustomer(db(), customer);
    return account === null ? null : { ...rest, userId: account.id };
  }

  app.get<Query>('/operator/log', { preHandler: requireOperator }, async (request, reply) => {
    const parsed = parseLogQuery(request.query);
    if (!parsed.ok) return render(reply, 400, parsed.text, { errors: parsed.errors });
    const filter = await resolve(parsed.filter);
    if (filter === null) return render(reply, 200, parsed.text, { rows: [], notice: 'No account has that email address or id.' });
    const page = await readLogPage(db(), filter, parsed.before);
    if (!page.found)
      return render(reply, 400, parsed.text, {
        errors: { before: 'That page of the log is no longer there (its entries may have been removed). Start again from the newest.' },
      });
    return render(reply, 200, parsed.text, {
      rows: page.rows,
      olderUrl: page.nextBefore === null ? null : `/operator/log${filterQuery(parsed.text, { before: page.nextBefore })}`,
      continued: parsed.before !== null,
    });
  });

  app.get<Query>('/operator/log.csv', { preHandler: requireOperator }, async (request, reply) => {
    const parsed = parseLogQuery(request.query);
    if (!parsed.ok) return render(reply, 400, parsed.text, { errors: parsed.errors });
    const filter = await resolve(parsed.filter);
    const database = db();
    async function* lines() {
      yield csvLine(LOG_CSV_HEADER);
      if (filter === null) return;
      for await (const batch of readWholeLog(database, filter)) yield batch.map(logRowCsv).join('');
    }
    const stamp = new Date().toISOString().slice(0, 16).replace(/[-:]/g, '');
    // Which rows, not whose: the customer and address filters stay out of the portal's own log.
    request.log.info(
      { kind: parsed.text.kind, outcome: parsed.text.outcome, from: parsed.text.from, to: parsed.text.to },
      'request log exported',
    );
    return reply
      .type('text/csv; charset=utf-8')
      .header('content-disposition', `attachment; filename="archway-log-${stamp}.csv"`)
      .send(Readable.from(lines()));
  });

  function render(
    reply: FastifyReply,
    status: number,
    text: LogFilterText,
    data: { rows?: unknown[]; errors?: Record<string, string>; notice?: string; olderUrl?: string | null; continued?: boolean },
  ) {
    return reply.code(status).view('operator/log', {
      title: 'Request log',
      filter: text,
      kinds: LOG_KINDS,
      outcomes: LOG_OUTCOMES,
      errors: data.errors ?? {},
      notice: data.notice ?? null,
      rows: data.rows ?? null,
      olderUrl: data.olderUrl ?? null,
      continued: data.continued ?? false,
      exportUrl: `/operator/log.csv${filterQuery(text)}`,
      filtered: Object.values(text).some((v) => v !== ''),
      formatTime,
      logEventLabel,
      describeDetail,
    });
  }
}

// GET /operator/activity: sign-ins, failed attempts, blocks, archive requests and downloads per hour or day, as SVG charts.
import type { FastifyInstance } from 'fastify';
import { requireOperator } from '../users/guards.js';
import { parseActivityQuery, readActivity } from './activity.js';
import { barChartSvg, bucketLabel } from './activity-chart.js';

export function registerActivityRoutes(app: FastifyInstance): void {
  app.get<{ Querystring: Record<string, unknown> }>('/operator/activity', { preHandler: requireOperator }, async (request, reply) => {
    const query = parseActivityQuery(request.query, app.ctx.clock.now());
    const view = { title: 'Activity', text: query.text, error: null as string | null, activity: null as unknown, charts: [] as string[] };
    if (!query.ok) return reply.code(400).view('operator/activity', { ...view, error: query.error });
    const activity = await readActivity(app.ctx.database.db, query.from, query.until, query.bucket);
    const charts = activity.series.map((s, i) => barChartSvg(s, activity.starts, activity.bucket, `chart-${i}`));
    return reply.view('operator/activity', { ...view, activity, charts, bucketLabel });
  });
}

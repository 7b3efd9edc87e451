// The operator's customer pages: search, one page per customer, and a confirmation page and POST per action.
import type { HostAssignment } from '../backup-host/index.js';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { customerOf } from '../archives/archive-request.service.js';
import { formatTime } from './request-log.js';
import { requireOperator } from '../users/guards.js';
import { ACTION_TEXT, isCustomerAction, MAX_REASON_LENGTH, runCustomerAction, type ActionForm } from './customer-actions.js';
import { loadCustomerFile, MAX_SEARCH_LENGTH, parseCustomerSearch, searchCustomers } from './customers.repository.js';

type Form = Record<string, unknown>;
type Params = { id: string; action: string };

/** A form field as one bounded string; anything else (an array, a missing field) is empty. */
function field(body: Form | undefined, name: string, max: number): string {
  const value = body?.[name];
  return typeof value === 'string' ? value.slice(0, max + 1).trim() : '';
}

export function registerCustomerRoutes(app: FastifyInstance): void {
  const ctx = app.ctx;
  const load = (id: string) => loadCustomerFile(ctx.database.db, id, ctx.clock.now(), ctx.config.auth.sessionIdleMinutes);

  app.get<{ Querystring: Form }>('/operator/customers', { preHandler: requireOperator }, async (request, reply) => {
    const parsed = parseCustomerSearch(request.query);
    const view = (status: number, data: object) =>
      reply
        .code(status)
        .header('cache-control', 'no-store')
        .view('operator/customers', {
          title: 'Customers',
          maxSearchLength: MAX_SEARCH_LENGTH,
          customers: null,
          nextUrl: null,
          error: null,
          ...data,
        });
    if (!parsed.ok) return view(400, { term: parsed.term, error: parsed.error });
    const page = await searchCustomers(ctx.database.db, parsed.query);
    const term = parsed.query.term;
    const nextUrl =
      page.nextAfter === null
        ? null
        : `/operator/customers?${new URLSearchParams({ ...(term !== '' ? { q: term } : {}), after: page.nextAfter }).toString()}`;
    return view(200, { term, customers: page.customers, nextUrl });
  });

  app.get<{ Params: { id: string }; Querystring: { done?: string } }>(
    '/operator/customers/:id',
    { preHandler: requireOperator },
    async (request, reply) => {
      const file = await load(request.params.id);
      if (file === null) return reply.callNotFound();
      const done = request.query.done;
      return reply.header('cache-control', 'no-store').view('operator/customer', {
        title: file.overview.account.email,
        file,
        backupName: customerOf(file.overview.account),
        backupHost: describeHost(app.ctx.backupHosts.assign(file.overview.account.backupHost)),
        notice: typeof done === 'string' && isCustomerAction(done) ? ACTION_TEXT[done].done : null,
        formatTime,
      });
    },
  );

  const renderAction = async (
    request: FastifyRequest<{ Params: Params }>,
    reply: FastifyReply,
    status: number,
    values: { form?: ActionForm; error?: string | null },
  ) => {
    const file = await load(request.params.id);
    if (file === null || !isCustomerAction(request.params.action)) return reply.callNotFound();
    const action = request.params.action;
    return reply
      .code(status)
      .header('cache-control', 'no-store')
      .view('operator/customer-action', {
        title: ACTION_TEXT[action].title,
        action,
        text: ACTION_TEXT[action],
        file,
        form: values.form ?? { reason: '', newEmail: '', block: '' },
        error: values.error ?? null,
        maxReasonLength: MAX_REASON_LENGTH,
        formatTime,
      });
  };

  app.get<{ Params: Params; Querystring: { block?: unknown } }>(
    '/operator/customers/:id/:action',
    { preHandler: requireOperator },
    (request, reply) =>
      // The block link on the customer page preselects its block.
      renderAction(request, reply, 200, {
        form: { reason: '', newEmail: '', block: typeof request.query.block === 'string' ? request.query.block.slice(0, 40) : '' },
      }),
  );

  app.post<{ Params: Params; Body: Form }>('/operator/customers/:id/:action', { preHandler: requireOperator }, async (request, reply) => {
    const file = await load(request.params.id);
    const action = request.params.action;
    if (file === null || !isCustomerAction(action)) return reply.callNotFound();
    const form = {
      reason: field(request.body, 'reason', MAX_REASON_LENGTH),
      newEmail: field(request.body, 'newEmail', 320),
      block: field(request.body, 'block', 40),
    };
    const operator = request.user!;
    const outcome = await runCustomerAction(ctx, app.twoFactor, action, file, form, { id: operator.id, ip: request.ip });
    if (!outcome.ok) return renderAction(request, reply, outcome.status, { form, error: outcome.error });
    request.log.info({ operatorId: operator.id, userId: file.overview.account.id, action }, 'operator action on a customer');
    return reply.redirect(`/operator/customers/${file.overview.account.id}?done=${action}`, 303);
  });
}

/** The account's backup host as the operator reads it, with why the customer's backups page says "not set up" when it does. */
function describeHost(assigned: HostAssignment): { text: string; problem: string | null } {
  if (assigned.ok) return { text: assigned.name, problem: null };
  if (assigned.reason === 'none')
    return { text: 'none', problem: 'no backup host is named and the fleet has no default: set one with archway users set-host' };
  return {
    text: assigned.name ?? 'none',
    problem:
      "this host is not in the portal's fleet (ARCHWAY_BACKUP_HOSTS_FILE): add it there, or move the customer with archway users set-host",
  };
}

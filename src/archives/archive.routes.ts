// The customer's archive pages: the backups list and its request form, one archive's page, cancel, and "send the link again".
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { requireUser, type SignedInUser } from '../users/guards.js';
import { BackupHostError, BackupHostRefused } from '../backup-host/index.js';
import { perUserPerMinute } from '../http/rate-limit.js';
import { isSnapshotName, type SnapshotInfo } from '../protocol/index.js';
import { archiveViewHelpers, describeWait } from './archive-format.js';
import { findActiveRequest, findOwnedRequest, listRecentRequests, type ArchiveRequest } from './archive-request.repository.js';
import {
  cancelArchive,
  cooldownEnd,
  customerOf,
  newestFirst,
  requestLinkAgain,
  startArchive,
  UNAVAILABLE_MESSAGE,
} from './archive-request.service.js';
import { lastInterruptedDownload, PROGRESS_REFRESH_SECONDS, progressOf } from './archive-progress.js';

interface Form {
  [field: string]: unknown;
}

interface IdRoute {
  Params: { id: string };
  Querystring: Record<string, unknown>;
  Body: Form | undefined;
}
type IdRequest = FastifyRequest<IdRoute>;

/** The longest snapshot field looked at; the protocol allows 128 characters, anything longer is refused unread. */
const MAX_SNAPSHOT_FIELD = 128;

export const NO_BACKUP_HOST_MESSAGE =
  'Archives cannot be requested on this portal: no backup host is set up yet. Your provider can tell you more.';
const NO_DOMAIN_MESSAGE =
  'Your account has no installation domain, so there are no backups to show. Write to your provider to have it set.';
const NO_BACKUPS_MESSAGE = 'There are no backups of your installation yet.';
/** The account names no backup host of this portal's fleet (or none at all): the operator's page says which. */
export const NOT_SET_UP_MESSAGE =
  'Your backups are not set up yet on this portal, so there is nothing to download here for now. Your provider has been told what is missing; write to them if this lasts.';

/**
 * Customers only: someone not signed in goes to sign in, an operator gets the same "no such page"
 * as any unknown address (operators have no backups, and the operator area is elsewhere).
 */
export async function requireCustomer(request: FastifyRequest, reply: FastifyReply): Promise<void> {
  if (request.user === null) return requireUser(request, reply);
  if (request.user.role !== 'customer') return reply.callNotFound();
}

/** The cooldown as the backups page shows it: the end rounded up to the minute, so the time shown is never early. */
interface Cooldown {
  until: Date;
  wait: string;
  retryAfterSeconds: number;
}

function describeCooldown(end: Date, now: Date): Cooldown {
  const until = new Date(Math.ceil(end.getTime() / 60_000) * 60_000);
  return { until, wait: describeWait(end.getTime() - now.getTime()), retryAfterSeconds: Math.ceil((end.getTime() - now.getTime()) / 1000) };
}

interface BackupsList {
  snapshots: SnapshotInfo[];
  /** Why there is no list to choose from, in words for the customer; null when there is one. */
  problem: string | null;
}

export function registerArchiveRoutes(app: FastifyInstance): void {
  const viewHelpers = archiveViewHelpers;

  /** The fleet host of the customer's new archives; null when the portal has no backup host at all. */
  function hostOf(user: SignedInUser): { name: string } | { problem: string } | null {
    if (app.ctx.backupHosts.names.length === 0) return null;
    const assigned = app.ctx.backupHosts.assign(user.backupHost);
    return assigned.ok ? { name: assigned.name } : { problem: NOT_SET_UP_MESSAGE };
  }

  /** The customer's snapshots, or the reason there are none to show; details of a failure go only to the log. */
  async function loadBackups(request: FastifyRequest, user: SignedInUser): Promise<BackupsList> {
    const customer = customerOf(user);
    if (customer === null) return { snapshots: [], problem: NO_DOMAIN_MESSAGE };
    const assigned = hostOf(user);
    if (assigned !== null && 'problem' in assigned) return { snapshots: [], problem: assigned.problem };
    try {
      const host = assigned === null ? null : app.ctx.backupHosts.get(assigned.name);
      if (host === null) return { snapshots: [], problem: NO_BACKUP_HOST_MESSAGE };
      const { snapshots } = await host.listBackups({ customer });
      return { snapshots: newestFirst(snapshots), problem: null };
    } catch (error) {
      if (error instanceof BackupHostRefused && error.code === 'not_found') return { snapshots: [], problem: NO_BACKUPS_MESSAGE };
      if (error instanceof BackupHostError) {
        request.log.warn({ reason: error.message, kind: error.name }, 'backups list not available');
        return {
          snapshots: [],
          problem: 'The backup service is not available right now, so your backups cannot be listed. Please try again in a few minutes.',
        };
      }
      throw error;
    }
  }

  /** The cooldown after the user's last completed download, or null when they may ask for an archive now. */
  async function cooldownOf(user: SignedInUser): Promise<Cooldown | null> {
    const now = app.ctx.clock.now();
    const end = await cooldownEnd(app.ctx.database.db, user.id, app.ctx.config.archives.cooldownMs, now);
    return end === null ? null : describeCooldown(end, now);
  }

  async function renderBackups(
    request: FastifyRequest,
    reply: FastifyReply,
    status: number,
    values: {
      list?: BackupsList;
      error?: string | null;
      selected?: string | null;
      activeId?: string | null;
      cooldown?: Cooldown | null;
    } = {},
  ) {
    const user = request.user as SignedInUser;
    const cooldown = values.cooldown !== undefined ? values.cooldown : await cooldownOf(user);
    // During the cooldown there is nothing to choose, so the backup host is not asked for the list.
    const list = cooldown !== null ? { snapshots: [], problem: null } : (values.list ?? (await loadBackups(request, user)));
    const selected =
      values.selected !== undefined && values.selected !== null && list.snapshots.some((s) => s.name === values.selected)
        ? values.selected
        : (list.snapshots[0]?.name ?? null);
    if (cooldown !== null && status === 429) reply.header('retry-after', String(cooldown.retryAfterSeconds));
    return reply
      .code(status)
      .header('cache-control', 'no-store')
      .view('archives/backups', {
        title: 'Your backups',
        ...viewHelpers,
        snapshots: list.snapshots,
        problem: list.problem,
        selected,
        error: values.error ?? null,
        activeId: values.activeId ?? null,
        cooldown,
        active: await findActiveRequest(app.ctx.database.db, user.id),
        requests: await listRecentRequests(app.ctx.database.db, user.id),
      });
  }

  async function renderArchive(
    reply: FastifyReply,
    status: number,
    request: ArchiveRequest,
    values: { notice?: string | null; error?: string | null } = {},
  ) {
    const working = request.state === 'requested' || request.state === 'building';
    return reply
      .code(status)
      .header('cache-control', 'no-store')
      .view('archives/archive', {
        title: `Archive of ${request.snapshot}`,
        ...viewHelpers,
        request,
        notice: values.notice ?? null,
        error: values.error ?? null,
        interrupted: request.state === 'ready' ? await lastInterruptedDownload(app.ctx.database.db, request) : null,
        // Without JavaScript the browser reloads the page; with it, the script takes over and stops that reload.
        refreshSeconds: working ? PROGRESS_REFRESH_SECONDS : null,
        script: working ? '/static/archive-progress.js' : null,
      });
  }

  /** What the archive service needs to act on one fleet host; null when the fleet has no such host. */
  const context = (request: FastifyRequest, hostName: string) => {
    const host = app.ctx.backupHosts.get(hostName);
    return host === null ? null : { db: app.ctx.database.db, host, hostName, log: request.log, now: app.ctx.clock.now(), ip: request.ip };
  };

  /** The request if the signed-in user owns it; otherwise the same 404 as any unknown address. */
  async function ownedOr404(request: IdRequest, reply: FastifyReply): Promise<ArchiveRequest | null> {
    const found = await findOwnedRequest(app.ctx.database.db, (request.user as SignedInUser).id, request.params.id);
    if (found === null) reply.callNotFound();
    return found;
  }

  // Each load calls backups.list on the backup host: limited per user, and no HEAD route runs it either.
  app.get(
    '/backups',
    { preHandler: requireCustomer, exposeHeadRoute: false, config: { rateLimit: perUserPerMinute(30) } },
    async (request, reply) => renderBackups(request, reply, 200),
  );

  app.post<{ Body: Form | undefined }>(
    '/archives',
    { preHandler: requireCustomer, config: { rateLimit: perUserPerMinute(10) } },
    async (request, reply) => {
      const user = request.user as SignedInUser;
      // Refused before anything else, the backup host included: 429, as for any limit that lifts at a known time (Retry-After).
      const cooldown = await cooldownOf(user);
      if (cooldown !== null) return renderBackups(request, reply, 429, { cooldown });
      const field = request.body?.snapshot;
      if (typeof field !== 'string' || field.length > MAX_SNAPSHOT_FIELD || !isSnapshotName(field)) {
        return renderBackups(request, reply, 400, { error: 'Choose one of your backups from the list.' });
      }
      const customer = customerOf(user);
      const assigned = hostOf(user);
      if (assigned !== null && 'problem' in assigned)
        return renderBackups(request, reply, 409, { list: { snapshots: [], problem: assigned.problem } });
      let ctx;
      try {
        ctx = assigned === null ? null : context(request, assigned.name);
      } catch (error) {
        if (!(error instanceof BackupHostError)) throw error;
        request.log.warn({ reason: error.message }, 'backup host client cannot be set up');
        return renderBackups(request, reply, 503, { error: UNAVAILABLE_MESSAGE });
      }
      if (ctx === null) return renderBackups(request, reply, 503, { list: { snapshots: [], problem: NO_BACKUP_HOST_MESSAGE } });
      if (customer === null) return renderBackups(request, reply, 400, { list: { snapshots: [], problem: NO_DOMAIN_MESSAGE } });
      // Only a snapshot the backup host lists right now: the dispatcher checks again, this gives the clearer message.
      const list = await loadBackups(request, user);
      if (list.problem !== null) return renderBackups(request, reply, 503, { list, error: UNAVAILABLE_MESSAGE });
      if (!list.snapshots.some((s) => s.name === field)) {
        return renderBackups(request, reply, 400, {
          list,
          error: 'That backup is not in your list (any more). Choose one of the backups shown.',
        });
      }
      const started = await startArchive(ctx, user, customer, field);
      switch (started.outcome) {
        case 'started':
          return reply.redirect(`/archives/${started.request.id}`, 303);
        case 'busy':
          return renderBackups(request, reply, 409, { list, error: started.message, activeId: started.activeId, selected: field });
        case 'refused':
          return renderBackups(request, reply, 409, { list, error: started.message, selected: field });
        case 'unavailable':
          return renderBackups(request, reply, 503, { list, error: started.message, selected: field });
      }
    },
  );

  app.get<IdRoute>('/archives/:id', { preHandler: requireCustomer }, async (request, reply) => {
    const found = await ownedOr404(request, reply);
    if (found === null) return reply;
    return renderArchive(reply, 200, found, {
      notice:
        request.query.sent !== undefined ? 'A new download link is on its way to your email address. Only that newest link works.' : null,
    });
  });

  // What the progress script polls instead of reloading the page: the owner's only (anyone else's is the 404 of an unknown page).
  app.get<IdRoute>('/archives/:id/progress', { preHandler: requireCustomer, exposeHeadRoute: false }, async (request, reply) => {
    const found = await ownedOr404(request, reply);
    if (found === null) return reply;
    return reply.header('cache-control', 'no-store').send(progressOf(found));
  });

  app.post<IdRoute>(
    '/archives/:id/cancel',
    { preHandler: requireCustomer, config: { rateLimit: perUserPerMinute(10) } },
    async (request, reply) => {
      const found = await ownedOr404(request, reply);
      if (found === null) return reply;
      let ctx;
      try {
        ctx = context(request, found.backupHost);
      } catch (error) {
        if (!(error instanceof BackupHostError)) throw error;
        ctx = null;
      }
      if (ctx === null)
        return renderArchive(reply, 503, found, {
          error: 'The backup service is not available right now, so the archive could not be cancelled.',
        });
      const result = await cancelArchive(ctx, request.user as SignedInUser, found.id);
      if (result.outcome === 'cancelled') return reply.redirect(`/archives/${found.id}`, 303);
      const status = result.outcome === 'unavailable' ? 503 : 409;
      const now = await findOwnedRequest(app.ctx.database.db, found.userId, found.id);
      return renderArchive(reply, status, now ?? found, { error: result.message });
    },
  );

  app.post<IdRoute>(
    '/archives/:id/resend',
    { preHandler: requireCustomer, config: { rateLimit: perUserPerMinute(10) } },
    async (request, reply) => {
      const found = await ownedOr404(request, reply);
      if (found === null) return reply;
      const result = await requestLinkAgain(app.ctx.database.db, request.user as SignedInUser, found, app.ctx.clock.now(), request.ip);
      if (result.outcome === 'queued') return reply.redirect(`/archives/${found.id}?sent`, 303);
      return renderArchive(reply, result.outcome === 'too-soon' ? 429 : 409, found, { error: result.message });
    },
  );
}

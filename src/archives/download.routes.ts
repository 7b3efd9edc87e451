// The download page: takes the emailed token out of the URL into a sealed cookie, then hands the owner a 60-second link.
import { archiveViewHelpers } from './archive-format.js';
import { formatUtc } from '../format.js';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { recordAudit } from '../users/audit.js';
import { requireUser, type SignedInUser } from '../users/guards.js';
import { BackupHostError, BackupHostLimited, BackupHostRefused } from '../backup-host/index.js';
import { canonicalIp, hashToken, isToken, newToken } from '../protocol/index.js';
import { findOwnedRequest, isRequestId, type ArchiveRequest } from './archive-request.repository.js';
import { resumeCommands } from './resume-commands.js';
import {
  DOWNLOAD_COOKIE_LIFETIME_MS,
  downloadCookieKey,
  downloadCookieName,
  openDownloadToken,
  sealDownloadToken,
} from './download-token-cookie.js';

type DownloadRequest = FastifyRequest<{ Params: { id: string }; Querystring: Record<string, unknown> }>;

interface Problem {
  status: number;
  title: string;
  message: string;
  offerResend: boolean;
  /** The token can never work again (or there is none): the cookie goes. */
  clearCookie: boolean;
}

/**
 * The address the download must come from, written as the downloads NGINX will see it. A portal
 * listening on a dual-stack socket sees an IPv4 browser as `::ffff:a.b.c.d`, but the browser reaches
 * the downloads host over IPv4, where NGINX's $remote_addr is the plain dotted quad.
 */
export function linkAddress(ip: string): string {
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(ip)?.[1];
  return canonicalIp(mapped ?? ip) ?? ip;
}

export function registerDownloadRoutes(app: FastifyInstance): void {
  const viewHelpers = archiveViewHelpers;
  const secure = app.ctx.config.auth.requireHttps;
  const cookieName = downloadCookieName(secure);
  const key = downloadCookieKey(app.ctx.config.secrets.encryptionKey);
  // Scoped to one request's page: the token is sent nowhere else, not even to this portal's other pages.
  const cookieOptions = (id: string) => ({ path: `/downloads/${id}`, secure, httpOnly: true, sameSite: 'lax' as const });

  const renderProblem = (reply: FastifyReply, request: ArchiveRequest, problem: Problem) => {
    if (problem.clearCookie) reply.clearCookie(cookieName, cookieOptions(request.id));
    return reply.code(problem.status).view('archives/download', {
      title: problem.title,
      ...viewHelpers,
      kind: 'problem',
      request,
      message: problem.message,
      offerResend: problem.offerResend,
    });
  };

  const setTokenCookie = (reply: FastifyReply, id: string, token: string) => {
    const expiresAt = new Date(app.ctx.clock.now().getTime() + DOWNLOAD_COOKIE_LIFETIME_MS);
    reply.setCookie(cookieName, sealDownloadToken(key, id, token, expiresAt), {
      ...cookieOptions(id),
      maxAge: DOWNLOAD_COOKIE_LIFETIME_MS / 1000,
    });
  };

  /**
   * The emailed token opens the page once: after it has served a link it is replaced on the backup
   * host by a fresh one that only this browser's cookie holds, so the address that stays in the
   * browser's history (a redirect's source is kept there) cannot be used again by someone else.
   * If the backup host cannot take the new one, the old token simply keeps working.
   */
  const replaceToken = async (request: FastifyRequest, reply: FastifyReply, found: ArchiveRequest) => {
    const next = newToken();
    try {
      await app.ctx.backupHosts.use(found.backupHost).armArchive({
        customer: found.customer,
        archiveId: found.archiveId!,
        tokenHash: hashToken(next),
      });
    } catch (error) {
      request.log.warn(
        { archiveRequestId: found.id, reason: (error as Error).message },
        'download token not replaced; the emailed one keeps working',
      );
      return;
    }
    setTokenCookie(reply, found.id, next);
  };

  // Each page load issues a link on the backup host: at most 10 a minute per user, and HEAD (which Fastify
  // would answer by running this handler) gets the ordinary 404. The `?t=` step only sets the cookie and
  // redirects: it is never refused, so the token always leaves the address bar, and it is not counted.
  app.get(
    '/downloads/:id',
    {
      exposeHeadRoute: false,
      config: { rateLimit: { max: 10, timeWindow: 60_000, allowList: (request) => Object.hasOwn(request.query as object, 't') } },
    },
    async (request: DownloadRequest, reply) => {
      // The page shows a link that is valid for a minute and was made for this visit: never kept by a cache.
      reply.header('cache-control', 'no-store');
      const id = request.params.id;

      // Step one, before anything else (even before asking who is signed in): the token leaves the
      // address bar, history and any sign-in redirect at once. It goes into a cookie, not the session,
      // which is a database row; the access log already censors the `t` parameter.
      if (Object.hasOwn(request.query, 't')) {
        if (!isRequestId(id)) return reply.callNotFound();
        const token = request.query.t;
        if (typeof token === 'string' && isToken(token)) setTokenCookie(reply, id, token);
        return reply.redirect(`/downloads/${id}`, 303);
      }

      // Not signed in: to the sign-in page, which brings the browser back here (the cookie waits).
      if (request.user === null) return requireUser(request, reply);
      const user: SignedInUser = request.user;
      const found = await findOwnedRequest(app.ctx.database.db, user.id, id);
      if (found === null) return reply.callNotFound();

      switch (found.state) {
        case 'requested':
        case 'building':
          return renderProblem(reply, found, {
            status: 409,
            title: 'Your archive is not ready yet',
            message: 'We are still making this archive. We email you a link when it is ready.',
            offerResend: false,
            clearCookie: false,
          });
        case 'downloaded':
          return renderProblem(reply, found, {
            status: 410,
            title: 'This archive has been downloaded',
            message:
              'This archive has already been downloaded, and each archive can be downloaded once. Ask for a new archive if you need it again.',
            offerResend: false,
            clearCookie: true,
          });
        case 'expired':
          return renderProblem(reply, found, {
            status: 410,
            title: 'This archive has expired',
            message: 'This archive has expired and was removed from the backup host. Ask for a new archive if you need one.',
            offerResend: false,
            clearCookie: true,
          });
        case 'failed':
        case 'cancelled':
          return renderProblem(reply, found, {
            status: 410,
            title: 'There is nothing to download',
            message: 'This archive was not made, so there is nothing to download. Ask for a new archive on your backups page.',
            offerResend: false,
            clearCookie: true,
          });
        case 'ready':
          break;
      }

      // A missing, altered, expired, or other request's cookie all read as "no token here".
      const token = openDownloadToken(key, found.id, request.cookies[cookieName], app.ctx.clock.now());
      if (token === null) {
        return renderProblem(reply, found, {
          status: 200,
          title: 'Open the link from your email',
          message:
            'This browser has no valid download link for this archive. Open the link in the newest email we sent you about it (it works here for 15 minutes after you open it), or have us send a new one.',
          offerResend: true,
          clearCookie: request.cookies[cookieName] !== undefined,
        });
      }

      const clientIp = linkAddress(request.ip);
      const askedAt = app.ctx.clock.now().getTime();
      let link;
      try {
        if (found.archiveId === null) throw new BackupHostError('the archive has no id on the backup host');
        link = await app.ctx.backupHosts
          .use(found.backupHost)
          .issueLink({ customer: found.customer, archiveId: found.archiveId, token, clientIp });
      } catch (error) {
        if (error instanceof BackupHostLimited) {
          // A limit of the backup host's: the token is still good once it has passed, so the cookie stays.
          request.log.warn(
            { archiveRequestId: found.id, reason: error.message, code: error.code },
            'download link refused: backup host limit',
          );
          return renderProblem(reply, found, {
            status: 429,
            title: 'Please try again later',
            message: error.userMessage,
            offerResend: false,
            clearCookie: false,
          });
        }
        if (error instanceof BackupHostRefused) {
          request.log.info({ archiveRequestId: found.id, reason: error.message }, 'download link refused');
          // Every refusal is final for this token (replaced, downloaded, expired), so its cookie goes.
          // A token the host does not know, for an archive we have emailed, was replaced by a newer
          // email: most often the newest one, or a second one sent after a fault (the link mailer's
          // only duplicate window); say so, rather than only that it does not work.
          const replaced = error.reason === 'bad_token' && found.notifiedAt !== null;
          return renderProblem(reply, found, {
            status: 410,
            title: replaced ? 'A newer email replaced this link' : 'This link does not work any more',
            message: replaced
              ? `We sent a newer email about this archive (at ${formatUtc(found.notifiedAt!)}), and its link replaced this one. Open the link in that email, or have us send a new one.`
              : error.userMessage,
            offerResend: true,
            clearCookie: true,
          });
        }
        if (error instanceof BackupHostError) {
          request.log.warn(
            { archiveRequestId: found.id, reason: error.message, kind: error.name },
            'download link not available: backup host',
          );
          return renderProblem(reply, found, {
            status: 503,
            title: 'Please try again in a few minutes',
            message:
              'The backup service is not available right now. Reload this page in a few minutes: your link keeps working here for 15 minutes after you opened it.',
            offerResend: false,
            clearCookie: false,
          });
        }
        throw error;
      }
      await recordAudit(app.ctx.database.db, {
        actor: user.id,
        action: 'archive.link_issued',
        subject: user.id,
        ip: request.ip,
        detail: { requestId: found.id, archiveId: found.archiveId, expires: link.expires },
      });
      request.log.info({ archiveRequestId: found.id, expires: link.expires }, 'download link issued');
      await replaceToken(request, reply, found);
      // Counted from the link's lifetime on our clock, never from its expiry on the backup host's clock (which may be skewed).
      const endsAt = askedAt + link.lifetimeSeconds * 1000;
      const secondsLeft = Math.max(0, Math.floor((endsAt - app.ctx.clock.now().getTime()) / 1000));
      return reply.view('archives/download', {
        title: 'Your download is ready',
        ...viewHelpers,
        kind: 'link',
        request: found,
        url: link.url,
        fileName: link.fileName,
        ip: clientIp,
        secondsLeft,
        lifetimeSeconds: link.lifetimeSeconds,
        linkExpires: `${new Date(endsAt).toISOString().slice(11, 19)} UTC`,
        // Part of the archive already delivered (the backup host's count, copied by the event sync): offer to resume.
        resume: (found.deliveredBytes ?? 0) > 0 ? resumeCommands(link.fileName, link.url) : null,
        script: '/static/download-countdown.js',
      });
    },
  );
}

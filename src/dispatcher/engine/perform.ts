// Hands one validated request to the engine function that does the action; the front door calls nothing else.
import type { Action, Requests } from '../../protocol/index.js';
import { armArchive } from './arm.js';
import { archiveStatus, archiveStatuses, cancelArchive, createArchive, listArchives } from './archives.js';
import { listBackups } from './backups.js';
import { runCheck } from './check.js';
import type { DispatcherConfig } from './config.js';
import { eventsSince } from './events.js';
import { issueLink } from './links.js';
import { ping } from './ping.js';
import { runSweep } from './sweep.js';
import { runWatch } from './watch.js';

/** `req` has passed the protocol's validator for `action`; `note` writes a line to the call log. */
export async function perform(cfg: DispatcherConfig, action: Action, req: unknown, note: (detail: string) => void): Promise<unknown> {
  switch (action) {
    case 'ping':
      return ping(cfg);
    case 'backups.list':
      return listBackups(cfg, req as Requests['backups.list']);
    case 'archive.create':
      return createArchive(cfg, req as Requests['archive.create']);
    case 'archive.status':
      return archiveStatus(cfg, req as Requests['archive.status']);
    case 'archive.statuses':
      return archiveStatuses(cfg, req as Requests['archive.statuses'], note);
    case 'archive.list':
      return listArchives(cfg, req as Requests['archive.list']);
    case 'archive.cancel':
      return cancelArchive(cfg, req as Requests['archive.cancel']);
    case 'archive.arm':
      return armArchive(cfg, req as Requests['archive.arm']);
    case 'link.issue':
      return issueLink(cfg, req as Requests['link.issue']);
    case 'events.since': {
      const r = req as Requests['events.since'];
      return eventsSince(cfg, r.after, r.limit ?? 1000);
    }
    case 'watch':
      return runWatch(cfg, note);
    case 'sweep':
      return runSweep(cfg, note);
    case 'check':
      return runCheck(cfg);
  }
}

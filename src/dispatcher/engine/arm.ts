// archive.arm: stores the hash of the newest download token; an earlier token stops working at once.
import type { ArchiveArmRequest, ArchiveArmResult } from '../../protocol/index.js';
import { ownedRecord } from './archives.js';
import type { DispatcherConfig } from './config.js';
import { appendEvent } from './events.js';
import { fail } from './failure.js';
import { writeFileAtomic } from './fsutil.js';
import { paths } from './layout.js';
import { withMutex } from './lock.js';
import { readRecord } from './archive-store.js';

export function armArchive(cfg: DispatcherConfig, req: ArchiveArmRequest): ArchiveArmResult {
  ownedRecord(cfg, req.customer, req.archiveId);
  withMutex(paths.archiveMutex(cfg, req.archiveId), () => {
    const rec = readRecord(cfg, req.archiveId);
    if (rec?.state !== 'ready') fail('not_ready', `arm refused: state ${rec?.state}`);
    // Only the hash is kept: a copy of this directory does not let anyone download.
    writeFileAtomic(paths.tokenHash(cfg, req.archiveId), `${req.tokenHash}\n`, 0o600);
  });
  appendEvent(cfg, { type: 'archive.armed', customer: req.customer, archiveId: req.archiveId });
  return { armed: true };
}

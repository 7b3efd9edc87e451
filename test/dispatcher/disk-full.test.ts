// A real full disk under the archive root: a 2 MiB tmpfs that fills while GNU tar writes the archive.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeWorld, waitFor } from './world.js';
import { HOLD_FILE, slowTar } from '../archives/archive-world.js';

const CUSTOMER = 'full.example';
let mountPoint: string;

beforeAll(() => {
  mountPoint = mkdtempSync(join(tmpdir(), 'archway-full-'));
  // Root may mount tmpfs here; the suite runs as root (the harness needs it for sshd and PostgreSQL too).
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m,mode=0755', 'tmpfs', mountPoint]);
});
afterAll(() => {
  execFileSync('umount', [mountPoint]);
  rmSync(mountPoint, { recursive: true, force: true });
});

describe('an archive root that runs out of space', () => {
  it('tells the customer the disk is full when real GNU tar reports a short write, and keeps no partial file', async () => {
    const world = makeWorld({ archiveRoot: mountPoint });
    writeFileSync(world.configPath, JSON.stringify({ ...world.config, archiveRoot: mountPoint, tarPath: slowTar(world.dir) }), {
      mode: 0o600,
    });
    const snapshot = join(world.backupRoot, CUSTOMER, 'daily.0');
    mkdirSync(snapshot, { recursive: true });
    // 1 MiB of incompressible data fits the estimate; the build is held until the disk is filled behind its back.
    writeFileSync(join(snapshot, 'data.bin'), randomBytes(1024 * 1024));
    writeFileSync(join(snapshot, HOLD_FILE), '');
    const id = world.run('archive.create', { customer: CUSTOMER, snapshot: 'daily.0' }).answer.result.archiveId;
    const filler = join(mountPoint, 'filler');
    try {
      execFileSync('dd', ['if=/dev/zero', `of=${filler}`, 'bs=4k', 'count=1000'], { stdio: 'ignore' });
    } catch {
      // dd stops at "No space left on device": the disk is full, as intended.
    }
    // Less than one tar block (10 KiB) left: tar's next write is short, the way real disks fill up mid-block.
    truncateSync(filler, statSync(filler).size - 4096);
    rmSync(join(snapshot, HOLD_FILE));
    const status = await waitFor('the failure', () => {
      const s = world.run('archive.status', { customer: CUSTOMER, archiveId: id }).answer.result;
      return s.state !== 'building' ? s : null;
    });
    expect(status).toMatchObject({
      state: 'failed',
      failureReason: 'The backup host ran out of disk space while building the archive.',
      sizeBytes: null,
      sha256: null,
    });
    expect(readdirSync(mountPoint).filter((name) => name !== 'filler' && !name.startsWith('.'))).toEqual([]);
  }, 30_000);
});

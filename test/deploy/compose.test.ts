import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../src/paths.js';
import { findProgram } from '../harness/sshd.js';

describe('docker-compose.yml', () => {
  it('is a valid compose file that wires the portal, its nginx, PostgreSQL and the backup host', () => {
    // `config` parses, validates and resolves the file; no Docker engine is needed for that.
    const resolved = execFileSync(findProgram('docker-compose'), ['-f', path.join(PROJECT_ROOT, 'docker-compose.yml'), 'config'], {
      cwd: PROJECT_ROOT,
      encoding: 'utf8',
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ARCHWAY_BACKUP_HOST_FINGERPRINT: `SHA256:${'A'.repeat(43)}` },
    });
    const services = /^services:\n((?: {2}\S[^\n]*\n(?: {4}[^\n]*\n)*)+)/m.exec(resolved)?.[1] ?? '';
    const names = [...services.matchAll(/^ {2}([\w-]+):$/gm)].map((m) => m[1]).sort();
    expect(names).toEqual(expect.arrayContaining(['backup-host', 'portal', 'postgres']));
    expect(names.some((n) => /nginx/.test(n ?? ''))).toBe(true);
  });
});

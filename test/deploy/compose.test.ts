import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../src/paths.js';
import { findProgram } from '../harness/sshd.js';

function resolvedCompose(): string {
  // `config` parses, validates and resolves the file; no Docker engine is needed for that.
  return execFileSync(findProgram('docker-compose'), ['-f', path.join(PROJECT_ROOT, 'docker-compose.yml'), 'config'], {
    cwd: PROJECT_ROOT,
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ARCHWAY_BACKUP_HOST_FINGERPRINT: `SHA256:${'A'.repeat(43)}` },
  });
}

/** The resolved block of one service (its lines indented under `  name:`). */
function serviceBlock(resolved: string, name: string): string {
  return new RegExp(`^  ${name}:\\n((?: {4}[^\\n]*\\n)+)`, 'm').exec(resolved)?.[1] ?? '';
}

describe('docker-compose.yml', () => {
  it('checks the portal and its nginx on /readyz, and starts the nginx only once the portal is healthy', () => {
    const resolved = resolvedCompose();
    const portal = serviceBlock(resolved, 'portal');
    expect(portal).toMatch(/^ {4}healthcheck:\n(?: {6}.*\n)*? {6}- fetch\('http:\/\/127\.0\.0\.1:3000\/readyz'\)/m);
    const nginx = serviceBlock(resolved, 'portal-nginx');
    expect(nginx).toMatch(/^ {4}healthcheck:\n(?: {6}.*\n)*? {6}- https:\/\/127\.0\.0\.1\/readyz\n/m);
    expect(nginx).toMatch(/^ {4}depends_on:\n {6}portal:\n {8}condition: service_healthy\n/m);
  });

  it('is a valid compose file that wires the portal, its nginx, PostgreSQL and the backup host', () => {
    const resolved = resolvedCompose();
    const services = /^services:\n((?: {2}\S[^\n]*\n(?: {4}[^\n]*\n)*)+)/m.exec(resolved)?.[1] ?? '';
    const names = [...services.matchAll(/^ {2}([\w-]+):$/gm)].map((m) => m[1]).sort();
    expect(names).toEqual(expect.arrayContaining(['backup-host', 'portal', 'postgres']));
    expect(names.some((n) => /nginx/.test(n ?? ''))).toBe(true);
  });
});

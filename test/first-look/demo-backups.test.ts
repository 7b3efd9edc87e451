// The demo backups first look generates: a Mastodon instance's snapshots, small, and the same bytes every time.
import { lstatSync, mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { generateDemoBackups } from '../../src/first-look/demo-backups.js';
import { filesUnder, removeScratch, treeDigest } from './first-look-world.js';

const dirs: string[] = [];
// Thousands of folders: removing them takes a while on a busy machine.
afterAll(() => dirs.forEach(removeScratch), 600_000);

const twice: { customer: string; summary: ReturnType<typeof generateDemoBackups> }[] = [];

function generate(newest: Date) {
  const dir = mkdtempSync(path.join(tmpdir(), 'archway-demo-backups-'));
  dirs.push(dir);
  const customer = path.join(dir, 'demo.example.net');
  return { customer, summary: generateDemoBackups(customer, 'demo.example.net', newest) };
}

describe('demo backups', () => {
  it('are three dated snapshots of a Mastodon instance, the newest last written, thousands of small files in nested folders', () => {
    const { customer, summary } = generate(new Date('2026-03-10T17:45:00Z'));
    twice.push({ customer, summary });
    expect(summary.snapshots).toEqual(['2026-03-08', '2026-03-09', '2026-03-10']);
    expect(readdirSync(customer).sort()).toEqual(summary.snapshots);
    // backups.list sorts by the snapshot folder's time: each is its day at 03:00 UTC.
    expect(summary.snapshots.map((s) => statSync(path.join(customer, s)).mtime.toISOString())).toEqual(
      summary.snapshots.map((s) => `${s}T03:00:00.000Z`),
    );
    const newest = path.join(customer, '2026-03-10');
    expect(readFileSync(path.join(newest, 'postgresql', 'mastodon_production.sql'), 'utf8')).toMatch(
      /^--\n-- PostgreSQL database dump[\s\S]*COPY public\.statuses [\s\S]*dump complete\n--\n$/,
    );
    const env = readFileSync(path.join(newest, 'mastodon', 'live', '.env.production'), 'utf8');
    expect(env).toContain('LOCAL_DOMAIN=demo.example.net');
    for (const line of env.split('\n').filter((l) => /SECRET/.test(l) && !l.startsWith('#')))
      expect(line).toMatch(/=first-look-demo-value-not-a-secret$/);
    const media = filesUnder(path.join(newest, 'mastodon', 'live', 'public', 'system'), '');
    expect(media.length).toBeGreaterThan(1000);
    expect(media.some((f) => /media_attachments\/files\/(\d{3}\/){6}small\/[0-9a-f]{16}\.jpg$/.test(f))).toBe(true);
    expect(summary.files).toBeGreaterThan(3000);
    // Unchanged media are hard links to the day before, so the three days cost little more than one.
    const inodes = new Map<number, number>();
    for (const file of filesUnder(customer, '')) inodes.set(lstatSync(file).ino, lstatSync(file).size);
    const unique = [...inodes.values()].reduce((a, b) => a + b, 0);
    expect(unique).toBeLessThan(32 * 1024 * 1024);
    expect(lstatSync(media[0]!).nlink).toBeGreaterThan(1);
  });

  it('are the same tree with the same bytes every time', () => {
    const [a] = twice;
    const b = generate(new Date('2026-03-10T05:00:00Z'));
    expect(b.summary).toEqual(a!.summary);
    expect(treeDigest(b.customer)).toBe(treeDigest(a!.customer));
  });
});

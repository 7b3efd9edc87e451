// Generates first look's demo backups: a small Mastodon instance's dated snapshots, the same bytes on every run.
import { createCipheriv, createHash } from 'node:crypto';
import { linkSync, mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export interface DemoBackupsSummary {
  snapshots: string[];
  files: number;
  bytes: number;
}

const SNAPSHOTS = 3;
const ACCOUNTS = 50;
const FIRST_ATTACHMENTS = 500;
const NEW_ATTACHMENTS_PER_DAY = 60;
const EMOJIS = 50;
const FIRST_STATUSES = 9000;
const NEW_STATUSES_PER_DAY = 700;
const DAY_MS = 86_400_000;
// Snowflake-like ids: Mastodon splits them into 3-digit folders, so media sit six folders deep.
const FIRST_ID = 109_348_577_394_512_000n;

const WORDS = (
  'the a backup server toot instance federation timeline photo cat garden coffee morning train rain music ' +
  'release patch admin moderation report hashtag boost reply follow media poll sunset mountain river code'
).split(' ');

/** mulberry32: a tiny seeded PRNG, so names, sizes and text are the same on every run. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Incompressible filler from AES-CTR under a fixed key: fast and identical on every run. */
function fillerPool(bytes: number): Buffer {
  const key = createHash('sha256').update('archway first-look demo backups').digest();
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  return Buffer.concat([cipher.update(Buffer.alloc(bytes)), cipher.final()]);
}

class SnapshotWriter {
  files = 0;
  bytes = 0;
  private readonly dirs = new Set<string>();

  constructor(
    root: string,
    private readonly pool: Buffer,
    private readonly random: () => number,
  ) {
    mkdirSync(root, { recursive: true });
    this.dirs.add(root);
  }

  /** One mkdir per new folder (no recursive walk): the folders are most of the cost. */
  private ensureDir(dir: string): void {
    if (this.dirs.has(dir)) return;
    this.ensureDir(path.dirname(dir));
    mkdirSync(dir);
    this.dirs.add(dir);
  }

  write(file: string, content: Buffer | string): void {
    this.ensureDir(path.dirname(file));
    writeFileSync(file, content);
    this.files++;
    this.bytes += typeof content === 'string' ? Buffer.byteLength(content) : content.length;
  }

  /** Unchanged files are hard links to the day before, as rsnapshot and rsync --link-dest make them. */
  link(from: string, to: string, size: number): void {
    this.ensureDir(path.dirname(to));
    linkSync(from, to);
    this.files++;
    this.bytes += size;
  }

  media(min: number, max: number): Buffer {
    const size = min + Math.floor(this.random() * (max - min));
    const offset = Math.floor(this.random() * (this.pool.length - size));
    return this.pool.subarray(offset, offset + size);
  }
}

function idPath(id: bigint): string {
  const digits = id.toString().padStart(18, '0');
  return digits.match(/\d{3}/g)!.join('/');
}

function hex(random: () => number, length: number): string {
  let out = '';
  while (out.length < length) out += Math.floor(random() * 16).toString(16);
  return out;
}

function words(random: () => number, count: number): string {
  const out: string[] = [];
  for (let i = 0; i < count; i++) out.push(WORDS[Math.floor(random() * WORDS.length)]!);
  return out.join(' ');
}

/** pg_dump's plain format; each day's dump is the same rows plus that day's statuses, so rows are made once. */
function databaseDumps(domain: string, statusCounts: number[], newest: Date): string[] {
  const random = prng(7);
  const head = [
    '--',
    '-- PostgreSQL database dump (first-look demo data, made up)',
    '--',
    '',
    'SET statement_timeout = 0;',
    "SET client_encoding = 'UTF8';",
    'SET standard_conforming_strings = on;',
    '',
    'COPY public.accounts (id, username, domain, display_name, note, created_at) FROM stdin;',
  ];
  for (let i = 0; i < ACCOUNTS; i++) {
    head.push(
      `${FIRST_ID + BigInt(i)}\tuser${i}\t\\N\tDemo user ${i}\t${words(random, 8)}\t2024-01-${String((i % 28) + 1).padStart(2, '0')} 12:00:00`,
    );
  }
  head.push('\\.', '', 'COPY public.statuses (id, uri, text, created_at, account_id, visibility) FROM stdin;', '');
  const total = Math.max(...statusCounts);
  const start = newest.getTime() - total * 60_000;
  const idPrefix = String(FIRST_ID / 1_000_000_000n);
  const rows: string[] = [];
  for (let i = 0; i < total; i++) {
    const id = `${idPrefix}${String(400_000_000 + i)}`;
    const created = new Date(start + i * 60_000).toISOString().replace('T', ' ').slice(0, 19);
    rows.push(
      `${id}\thttps://${domain}/users/user${i % ACCOUNTS}/statuses/${id}\t${words(random, 12 + (i % 20))}\t${created}\t${FIRST_ID + BigInt(i % ACCOUNTS)}\t${i % 4}\n`,
    );
  }
  const tail = '\\.\n\n--\n-- PostgreSQL database dump complete\n--\n';
  return statusCounts.map((count) => head.join('\n') + rows.slice(0, count).join('') + tail);
}

function envProduction(domain: string): string {
  return [
    "# Stand-in for Mastodon's .env.production, made for Archway's first look: no value here is a real secret.",
    `LOCAL_DOMAIN=${domain}`,
    'REDIS_HOST=localhost',
    'DB_HOST=/var/run/postgresql',
    'DB_NAME=mastodon_production',
    'DB_USER=mastodon',
    'SECRET_KEY_BASE=first-look-demo-value-not-a-secret',
    'OTP_SECRET=first-look-demo-value-not-a-secret',
    'SMTP_SERVER=smtp.example.net',
    'S3_ENABLED=false',
    '',
  ].join('\n');
}

interface MediaFile {
  rel: string;
  size: number;
}

/**
 * Writes SNAPSHOTS daily snapshots of a Mastodon instance under `customerDir` (one folder per day, the
 * newest dated `newest`): a database dump, Redis's dump, a `.env.production` stand-in and the
 * `public/system/` media tree, each day adding media and hard-linking the rest to the day before.
 */
export function generateDemoBackups(customerDir: string, domain: string, newest: Date): DemoBackupsSummary {
  const pool = fillerPool(1 << 20);

  const random = prng(20261128);
  const summary: DemoBackupsSummary = { snapshots: [], files: 0, bytes: 0 };
  let previous: { dir: string; media: MediaFile[] } | null = null;
  let attachmentId = FIRST_ID + 5_000_000_000n;
  // Only the day counts, so any time of the same day gives the same bytes.
  const day = Date.UTC(newest.getUTCFullYear(), newest.getUTCMonth(), newest.getUTCDate(), 3);
  const dumps = databaseDumps(
    domain,
    Array.from({ length: SNAPSHOTS }, (_, s) => FIRST_STATUSES + s * NEW_STATUSES_PER_DAY),
    new Date(day),
  );
  for (let s = 0; s < SNAPSHOTS; s++) {
    const at = new Date(day - (SNAPSHOTS - 1 - s) * DAY_MS);
    const name = at.toISOString().slice(0, 10);
    const dir = path.join(customerDir, name);
    const live = path.join(dir, 'mastodon', 'live');
    const system = path.join(live, 'public', 'system');
    const writer = new SnapshotWriter(dir, pool, random);
    const media: MediaFile[] = [];
    const add = (rel: string, content: Buffer) => {
      writer.write(path.join(system, rel), content);
      media.push({ rel, size: content.length });
    };
    if (previous === null) {
      for (let i = 0; i < ACCOUNTS; i++) {
        const id = idPath(FIRST_ID + BigInt(i));
        for (const kind of ['avatars', 'headers']) {
          const file = `${hex(random, 16)}.png`;
          add(`accounts/${kind}/${id}/original/${file}`, writer.media(2_000, 12_000));
          add(`accounts/${kind}/${id}/static/${file}`, writer.media(1_000, 4_000));
        }
      }
      for (let i = 0; i < EMOJIS; i++) {
        const id = idPath(FIRST_ID + 2_000_000n + BigInt(i));
        const file = `${hex(random, 16)}.png`;
        add(`custom_emojis/images/${id}/original/${file}`, writer.media(500, 3_000));
        add(`custom_emojis/images/${id}/static/${file}`, writer.media(300, 1_500));
      }
    } else {
      for (const file of previous.media) {
        writer.link(path.join(previous.dir, 'mastodon', 'live', 'public', 'system', file.rel), path.join(system, file.rel), file.size);
        media.push(file);
      }
    }
    const attachments = previous === null ? FIRST_ATTACHMENTS : NEW_ATTACHMENTS_PER_DAY;
    for (let i = 0; i < attachments; i++) {
      // Ids made moments apart share their first folders, as real ones do.
      attachmentId += BigInt(1 + Math.floor(random() * 400));
      const id = idPath(attachmentId);
      const file = `${hex(random, 16)}.jpg`;
      add(`media_attachments/files/${id}/original/${file}`, writer.media(2_000, 14_000));
      add(`media_attachments/files/${id}/small/${file}`, writer.media(600, 3_000));
    }
    writer.write(path.join(dir, 'postgresql', 'mastodon_production.sql'), dumps[s]!);
    writer.write(
      path.join(dir, 'redis', 'dump.rdb'),
      Buffer.concat([Buffer.from('REDIS0009'), pool.subarray(s * 65_536, (s + 1) * 65_536)]),
    );
    writer.write(path.join(live, '.env.production'), envProduction(domain));
    // Last: the snapshot folder's time is what backups.list sorts by, and writing inside it moves it.
    utimesSync(dir, at, at);
    summary.snapshots.push(name);
    summary.files += writer.files;
    summary.bytes += writer.bytes;
    previous = { dir, media };
  }
  return summary;
}

// Test world for the archive pages: the production app on its own database, a real local dispatcher, an SMTP sink.
import { chmodSync, mkdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sql } from 'kysely';
import type { ParsedMail } from 'mailparser';
import type { User } from '../../src/users/user.repository.js';
import { pollDueArchives } from '../../src/archives/archive-poller.js';
import type { ArchiveRequestState } from '../../src/archives/archives.tables.js';
import { sendDueLinks } from '../../src/archives/link-mailer.js';
import { fleetOfOne, type BackupHostConfig } from '../../src/config.js';
import { deliverDueMail } from '../../src/mail/mail.worker.js';
import { BUNDLE, makeWorld, type World } from '../dispatcher/world.js';
import { createUser, PASSWORD } from '../harness/users.js';
import { WebClient } from '../harness/web-client.js';
import { startPortalWorld, type PortalWorld } from '../harness/world.js';

export const PUBLIC_URL = 'https://portal.example.net';

/** A snapshot holding a file of this name is not archived until the file is removed (see slowTar). */
export const HOLD_FILE = 'HOLD-THE-BUILD';

export interface ArchiveWorld extends PortalWorld {
  /** The dispatcher the portal calls through the local transport (unused when the world overrides the backup host). */
  dispatcher: World;
}

export interface ArchiveWorldOptions {
  env?: Record<string, string>;
  /** Overrides the backup host: null for none, or other settings (an unreachable SSH host). */
  backupHost?: BackupHostConfig | null;
  /** Start the SMTP sink (default) or only reserve its port, as a mail server that is down. */
  smtpUp?: boolean;
  /** The dispatcher program the local transport runs, instead of the shipped bundle (e.g. one with a moved clock). */
  localDispatcherPath?: string;
}

/**
 * Writes a stand-in for tar that waits while the snapshot holds HOLD_FILE, then runs the real tar:
 * a build the test can keep "building" for as long as it needs, and then let finish.
 */
export function slowTar(dir: string): string {
  const path = join(dir, 'held-tar.sh');
  writeFileSync(
    path,
    `#!/bin/sh
snapshot=""; previous=""
for arg in "$@"; do [ "$previous" = "--directory" ] && snapshot="$arg"; previous="$arg"; done
while [ -e "$snapshot/${HOLD_FILE}" ]; do sleep 0.05; done
exec /usr/bin/tar "$@"
`,
  );
  chmodSync(path, 0o755);
  return path;
}

export async function startArchiveWorld(options: ArchiveWorldOptions = {}): Promise<ArchiveWorld> {
  const dispatcher = makeWorld();
  // The held tar lives outside the world's roots; the world's config is rewritten to use it.
  const tarPath = slowTar(dispatcher.dir);
  writeFileSync(dispatcher.configPath, JSON.stringify({ ...dispatcher.config, tarPath }), { mode: 0o600 });
  const backupHost =
    options.backupHost !== undefined
      ? options.backupHost
      : { localDispatcherConfig: dispatcher.configPath, localDispatcherPath: options.localDispatcherPath ?? BUNDLE };
  const portal = await startPortalWorld({
    smtp: options.smtpUp === false ? 'down' : 'up',
    env: { ARCHWAY_PUBLIC_URL: PUBLIC_URL, ...options.env },
    overrides: { backupHosts: backupHost === null ? { hosts: [], defaultHost: null } : fleetOfOne(backupHost) },
  });
  return Object.assign(portal, { dispatcher });
}

/** A snapshot directory with a few files, dated `ageHours` ago (the list is newest first by this date). */
export function makeSnapshot(
  world: ArchiveWorld,
  customer: string,
  name: string,
  ageHours: number,
  options: { held?: boolean } = {},
): string {
  const dir = join(world.dispatcher.backupRoot, customer, name);
  mkdirSync(join(dir, 'public'), { recursive: true });
  writeFileSync(join(dir, 'public', 'index.html'), `<h1>${customer} as of ${name}</h1>\n`.repeat(200));
  writeFileSync(join(dir, 'dump.sql'), `-- ${name}\n`.repeat(5000));
  if (options.held) writeFileSync(join(dir, HOLD_FILE), '');
  const when = new Date(Date.now() - ageHours * 3_600_000);
  utimesSync(dir, when, when);
  return dir;
}

/** Lets a held build go on (see slowTar). */
export function releaseBuild(snapshotDir: string): void {
  rmSync(join(snapshotDir, HOLD_FILE), { force: true });
}

export async function signedIn(world: ArchiveWorld, user: User, remoteAddress = '198.51.100.7'): Promise<WebClient> {
  const client = new WebClient(world.app, { remoteAddress });
  const answer = await client.signIn(user.email, PASSWORD);
  if (answer.status !== 303) throw new Error(`sign-in failed with ${answer.status}`);
  return client;
}

/** Asks for an archive of the snapshot as the customer's form does; returns the request id from the redirect. */
export async function askForArchive(client: WebClient, snapshot: string): Promise<string> {
  await client.get('/backups');
  const answer = await client.post('/archives', { snapshot });
  const id = /^\/archives\/([0-9a-f-]{36})$/.exec(answer.location ?? '')?.[1];
  if (answer.status !== 303 || id === undefined)
    throw new Error(`asking for an archive answered ${answer.status}: ${answer.body.slice(0, 500)}`);
  return id;
}

export interface ReadyArchive {
  user: User;
  client: WebClient;
  id: string;
  link: { path: string; token: string };
}

/** A signed-in customer with a ready archive whose link email has just arrived. */
export async function readyArchive(world: ArchiveWorld): Promise<ReadyArchive> {
  const user = await createUser(world.app);
  makeSnapshot(world, user.domain!, 'daily.0', 1);
  const client = await signedIn(world, user);
  const id = await askForArchive(client, 'daily.0');
  await pollUntil(world, id, ['ready']);
  const mails = await sendLinks(world);
  if (mails.length !== 1) throw new Error(`expected one link email, got ${mails.length}`);
  return { user, client, id, link: downloadLinkIn(mails[0]!) };
}

export async function requestRow(world: ArchiveWorld, id: string) {
  return world.app.ctx.database.db.selectFrom('archive_requests').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
}

/** Runs the poller (moving the app's clock past each wait) until the request reaches one of the states. */
export async function pollUntil(world: ArchiveWorld, id: string, states: ArchiveRequestState[], timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const row = await requestRow(world, id);
    if (states.includes(row.state)) return;
    if (Date.now() > deadline) throw new Error(`request ${id} is still ${row.state}, not ${states.join('/')}`);
    world.clock.advance(5_000);
    await pollDueArchives(world.app.ctx, { now: () => world.clock.now() });
    await new Promise((r) => setTimeout(r, 30));
  }
}

/** Runs the link mailer once and returns the messages the SMTP sink received meanwhile. */
export async function sendLinks(world: ArchiveWorld): Promise<ParsedMail[]> {
  const before = world.sink.messages.length;
  await sendDueLinks(world.app.ctx, { now: () => world.clock.now() });
  return world.sink.messages.slice(before);
}

/** Runs the ordinary mail queue once (the "could not be made" email goes that way). */
export async function deliverQueuedMail(world: ArchiveWorld): Promise<ParsedMail[]> {
  const before = world.sink.messages.length;
  await deliverDueMail(world.app.ctx, { now: () => world.clock.now() });
  return world.sink.messages.slice(before);
}

/** The download page link in a link email, as a path on the portal. */
export function downloadLinkIn(message: ParsedMail): { path: string; token: string } {
  const match = /https:\/\/portal\.example\.net(\/downloads\/[0-9a-f-]{36}\?t=([A-Za-z0-9_-]{43}))/.exec(message.text ?? '');
  if (!match?.[1] || !match[2]) throw new Error(`no download link in: ${message.text}`);
  return { path: match[1], token: match[2] };
}

/** Every row of every table in the public schema, as text: where a leaked secret would show up. */
export async function everyStoredText(world: Pick<PortalWorld, 'app'>): Promise<string> {
  const db = world.app.ctx.database.db;
  const { rows: tables } = await sql<{ table_name: string }>`
    select table_name from information_schema.tables where table_schema = 'public' and table_type = 'BASE TABLE'`.execute(db);
  const parts: string[] = [];
  for (const { table_name } of tables) {
    // The row as text covers every column, bytea included (as hex), so the hex form of a secret is searched too.
    const { rows } = await sql<{ row: string }>`select t::text as row from ${sql.table(table_name)} t`.execute(db);
    parts.push(...rows.map((r) => r.row));
  }
  return parts.join('\n');
}

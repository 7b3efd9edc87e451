// The real `archway serve` process through PostgreSQL connection kills: in each background job and in a web request.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { POLL_LEASE_MS } from '../../src/archives/archive-poller.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  askForArchive,
  makeSnapshot,
  PUBLIC_URL,
  pollUntil,
  releaseBuild,
  requestRow,
  signedIn,
  startArchiveWorld,
  type ArchiveWorld,
} from '../archives/archive-world.js';
import { TEST_SECRETS } from '../harness/app.js';
import { startServer, type RunningServer } from '../harness/cli.js';
import { eventually } from '../harness/eventually.js';
import { startScriptedSmtp, type ScriptedSmtp } from '../harness/smtp-scripted.js';
import { startTcpProxy, type TcpProxy } from '../harness/tcp-proxy.js';
import { createUser, PASSWORD } from '../harness/users.js';

let world: ArchiveWorld;
let proxy: TcpProxy;
let smtp: ScriptedSmtp;
let server: RunningServer;
let releaseSmtp: () => void = () => undefined;
const smtpHeld = new Promise<void>((resolve) => (releaseSmtp = resolve));

/** A browser's sign-in against the real server: the form's CSRF token and cookie, then the POST. */
async function signInOverHttp(email: string, password: string): Promise<Response> {
  const page = await fetch(`${server.url}/sign-in`);
  const cookie = page.headers
    .getSetCookie()
    .map((c) => c.split(';')[0])
    .join('; ');
  const csrf = /name="_csrf" value="([^"]+)"/.exec(await page.text())?.[1] ?? '';
  return fetch(`${server.url}/sign-in`, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', cookie },
    body: new URLSearchParams({ _csrf: csrf, email, password }).toString(),
  });
}

beforeAll(async () => {
  world = await startArchiveWorld();
  proxy = await startTcpProxy({ host: '127.0.0.1', port: Number(new URL(world.database.url).port) });
  // Every delivery waits at its final "250" until the test lets it go: the mail worker and the link mailer are mid-job.
  smtp = await startScriptedSmtp({ mode: 'hold', beforeAccept: () => smtpHeld });
}, 60_000);

afterAll(async () => {
  releaseSmtp();
  if (server !== undefined && server.child.exitCode === null) await server.stop('SIGKILL');
  await smtp?.close();
  await proxy?.close();
  await world?.close();
});

describe('archway serve when PostgreSQL drops its connections', () => {
  it('keeps running through kills in every background job and a web request, answers 503 meanwhile, and works after', async () => {
    // Work for each job: a queued email (mail worker), a building archive (poller), a ready archive (link mailer).
    const building = await createUser(world.app);
    const heldDir = makeSnapshot(world, building.domain!, 'daily.0', 1, { held: true });
    const buildingId = await askForArchive(await signedIn(world, building), 'daily.0');
    const ready = await createUser(world.app);
    makeSnapshot(world, ready.domain!, 'daily.0', 1);
    const readyId = await askForArchive(await signedIn(world, ready), 'daily.0');
    await pollUntil(world, readyId, ['ready']);
    await world.app.ctx.mail.enqueue(world.app.ctx.database.db, { to: building.email, template: 'test-message', data: {} });

    server = await startServer({
      cwd: mkdtempSync(path.join(tmpdir(), 'archway-serve-')),
      env: {
        ...TEST_SECRETS,
        ARCHWAY_DATABASE_URL: proxy.urlFor(world.database.url),
        ARCHWAY_SMTP_URL: smtp.url,
        ARCHWAY_PUBLIC_URL: PUBLIC_URL,
        ARCHWAY_REQUIRE_HTTPS: 'false',
        ARCHWAY_BACKUP_HOST_LOCAL_CONFIG: world.dispatcher.configPath,
      },
    });

    // Both mail jobs are in the middle of a send; the poller and the event sync run every few seconds.
    await smtp.waitForStalls(2);
    const until = Date.now() + 8_000;
    while (Date.now() < until) {
      proxy.cut();
      await new Promise((r) => setTimeout(r, 25));
    }
    expect(server.child.exitCode).toBe(null);

    // A web request whose query is on the wire when the connection goes: the "try again" page.
    proxy.silence();
    const postsBefore = server.output().split('"method":"POST","url":"/sign-in"').length;
    const inFlight = signInOverHttp(ready.email, PASSWORD);
    // The sign-in has reached the portal (its first step asks the database), and then more bytes
    // went into the partition: its query or its connection's start, which the cut must fail.
    await eventually(
      'the portal to take the sign-in',
      () => server.output().split('"method":"POST","url":"/sign-in"').length > postsBefore,
      {
        timeoutMs: 30_000,
      },
    );
    const heldBefore = proxy.heldBytes();
    await eventually('the sign-in query on the wire', () => proxy.heldBytes() > heldBefore, { timeoutMs: 30_000 });
    proxy.cut();
    proxy.resume();
    const answer = await inFlight;
    expect(answer.status).toBe(503);
    expect(answer.headers.get('retry-after')).toBe('30');
    expect(await answer.text()).toContain('please try again in a minute');
    expect(server.child.exitCode).toBe(null);

    // The database is back: the next request works, without a restart.
    const again = await signInOverHttp(ready.email, PASSWORD);
    expect(again.status).toBe(303);
    expect(again.headers.get('location')).toBe('/account');

    // The jobs back off and then finish their work: the poller sees the build end, both mails go out.
    releaseSmtp();
    releaseBuild(heldDir);
    // A poll whose answer the cut lost waits out its claim's lease before it is asked again.
    await eventually('the held build to be ready', async () => (await requestRow(world, buildingId)).state === 'ready', {
      timeoutMs: POLL_LEASE_MS + 30_000,
    });
    await eventually('the link email', () => smtp.received.some((m) => m.includes(ready.email)), { timeoutMs: 30_000 });
    await eventually('the queued email', () => smtp.received.some((m) => m.includes(building.email)), { timeoutMs: 30_000 });
    expect(server.output()).not.toContain('Unhandled');
    expect(await server.stop()).toBe(0);
  }, 240_000);
});

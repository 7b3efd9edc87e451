import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { simpleParser } from 'mailparser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { connectDatabase } from '../../src/db/connect.js';
import { sendMailNow } from '../../src/mail/mail.service.js';
import { deliverDueMail } from '../../src/mail/mail.worker.js';
import { outboxRoutes } from '../../src/mail/outbox.routes.js';
import { testConfig } from '../harness/app.js';
import { createTestDatabase, type TestDatabase } from '../harness/database.js';

let database: TestDatabase;
let dataDir: string;
let outboxDir: string;
let firstLook: FastifyInstance;
let guardCalls = 0;

// The outbox plugin is mounted under /check so this file does not depend on where app.ts puts it;
// the stand-in guard only proves the plugin puts the preHandler it is given in front of both pages.
const BASE = '/check/operator/outbox';
const OPERATOR = { 'x-test-operator': 'yes' };

const secret = `https://portal.example.net/set-password/${randomBytes(16).toString('hex')}`;
const unicodeNote = 'Grüße aus Zürich — 日本語 <b>not bold</b> & "quoted"';

beforeAll(async () => {
  database = await createTestDatabase();
  dataDir = await mkdtemp(path.join(tmpdir(), 'archway-outbox-'));
  outboxDir = path.join(dataDir, 'outbox');
  const base = testConfig(database.url);
  firstLook = await buildApp({ config: { ...base, mail: { ...base.mail, smtpUrl: null, outboxDir } }, database: database.handle });
  await firstLook.register(outboxRoutes, {
    prefix: '/check',
    preHandler: async (request, reply) => {
      guardCalls++;
      if (request.headers['x-test-operator'] !== 'yes') return reply.code(403).send('operators only');
    },
  });
  await firstLook.ready();

  await firstLook.ctx.mail.enqueue(database.handle.db, { to: 'alice@example.net', template: 'test-message', data: { note: secret } });
  await firstLook.ctx.mail.enqueue(database.handle.db, { to: 'bob@example.net', template: 'test-message', data: { note: unicodeNote } });
  expect(await deliverDueMail(firstLook.ctx)).toEqual(['sent', 'sent']);
});
afterAll(async () => {
  await firstLook.close();
  await database.drop();
  await rm(dataDir, { recursive: true, force: true });
});

async function emlFiles(): Promise<string[]> {
  return (await readdir(outboxDir)).sort();
}

async function parsedFiles() {
  return Promise.all(
    (await emlFiles()).map(async (name) => ({ name, mail: await simpleParser(await readFile(path.join(outboxDir, name))) })),
  );
}

function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

describe('first-look mode mail', () => {
  it('writes one .eml file per message, readable by a mail program, private to the portal user', async () => {
    const names = await emlFiles();
    expect(names).toHaveLength(2);
    for (const name of names) {
      expect(name).toMatch(/^\d{8}T\d{9}Z-[0-9a-f-]{36}\.eml$/);
      expect((await stat(path.join(outboxDir, name))).mode & 0o777).toBe(0o600);
    }
    expect((await stat(outboxDir)).mode & 0o777).toBe(0o700);

    const mails = (await parsedFiles()).map(({ mail }) => mail);
    const byRecipient = new Map(mails.map((m) => [!Array.isArray(m.to) ? m.to?.text : '', m]));
    expect([...byRecipient.keys()].sort()).toEqual(['alice@example.net', 'bob@example.net']);
    for (const mail of mails) {
      expect(mail.subject).toBe('Archway test message');
      expect(mail.from?.value).toEqual([{ name: 'Archway', address: 'archway@localhost' }]);
      expect(mail.date).toBeInstanceOf(Date);
    }
    expect(byRecipient.get('alice@example.net')?.text).toContain(`Note from the operator: ${secret}\n`);
    expect(byRecipient.get('bob@example.net')?.text).toContain(`Note from the operator: ${unicodeNote}\n`);
    expect(byRecipient.get('bob@example.net')?.html).toContain(
      `Note from the operator: ${escapeHtml(unicodeNote).replace(/&#39;/g, "'")}</p>`,
    );

    const rows = await database.handle.db.selectFrom('mail_queue').select(['status', 'body']).execute();
    expect(rows).toEqual([
      { status: 'sent', body: null },
      { status: 'sent', body: null },
    ]);
  });

  it('writes a message sent at once into the outbox too, storing nothing in the queue', async () => {
    const before = await emlFiles();
    await sendMailNow(firstLook.ctx, { to: 'carol@example.net', template: 'test-message', data: { note: 'a download link' } });
    const added = (await emlFiles()).filter((name) => !before.includes(name));
    expect(added).toHaveLength(1);
    const mail = await simpleParser(await readFile(path.join(outboxDir, added[0]!)));
    expect(mail.text).toContain('a download link');
    expect(await database.handle.db.selectFrom('mail_queue').select('id').execute()).toHaveLength(2);
    await rm(path.join(outboxDir, added[0]!));
  });

  it('lists the messages for the operator, newest first, linking to each', async () => {
    const res = await firstLook.inject({ url: BASE, headers: OPERATOR });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.body).toContain('<h1>Outbox</h1>');
    const names = (await emlFiles()).reverse();
    const links = [...res.body.matchAll(/<a href="([^"]+)">Archway test message<\/a>/g)].map((m) => m[1]);
    expect(links).toEqual(names.map((name) => `${BASE}/${name}`));
    expect(res.body).toContain('<td>alice@example.net</td>');
    expect(res.body).toContain('<td>bob@example.net</td>');
  });

  it('shows one message as escaped plain text and never renders its HTML', async () => {
    for (const { name, mail } of await parsedFiles()) {
      const res = await firstLook.inject({ url: `${BASE}/${name}`, headers: OPERATOR });
      expect(res.statusCode).toBe(200);
      expect(res.headers['cache-control']).toBe('no-store');
      expect(res.body).toContain('<h1>Archway test message</h1>');
      expect(res.body).toContain(`<pre class="mail-text">${escapeHtml(mail.text!.trimEnd())}</pre>`);
      expect(res.body).toContain(`<a href="${BASE}">Back to the outbox</a>`);
      expect(res.body).not.toContain('<p>Note from the operator');
      expect(res.body).not.toContain('<b>not bold</b>');
    }
  });

  it('makes addresses on this portal clickable and leaves every other address as text', async () => {
    const portal = firstLook.ctx.config.publicUrl;
    const note = `${portal}/set-password/abc?x=1&y=2 ${portal}0/x ${portal}@evil.example/ https://evil.example/?u=${portal}/a`;
    await firstLook.ctx.mail.enqueue(database.handle.db, { to: 'dave@example.net', template: 'test-message', data: { note } });
    const before = await emlFiles();
    expect(await deliverDueMail(firstLook.ctx)).toEqual(['sent']);
    const [added] = (await emlFiles()).filter((name) => !before.includes(name));
    try {
      const res = await firstLook.inject({ url: `${BASE}/${added}`, headers: OPERATOR });
      expect(res.statusCode).toBe(200);
      const link = `${portal}/set-password/abc?x=1&amp;y=2`;
      expect(res.body).toContain(
        `Note from the operator: <a href="${link}">${link}</a> ${portal}0/x ${portal}@evil.example/ https://evil.example/?u=${portal}/a\n`,
      );
      const shownText = /<pre class="mail-text">([\s\S]*?)<\/pre>/.exec(res.body)?.[1] ?? '';
      expect([...shownText.matchAll(/<a href="([^"]+)">/g)].map((m) => m[1])).toEqual([link]);
    } finally {
      await rm(path.join(outboxDir, added!));
    }
  });

  it('answers 404 to names that are not in the list, and to path tricks', async () => {
    const [real] = await emlFiles();
    await writeFile(path.join(outboxDir, 'notes.txt'), 'operator notes', { mode: 0o600 });
    await writeFile(path.join(dataDir, 'secrets.json'), '{"sessionSecret":"do-not-show"}', { mode: 0o600 });
    const attempts = [
      `${BASE}/notes.txt`,
      `${BASE}/..%2Fsecrets.json`,
      `${BASE}/..%2fsecrets.json`,
      `${BASE}/%2e%2e%2fsecrets.json`,
      `${BASE}/..%5Csecrets.json`,
      `${BASE}/../secrets.json`,
      `${BASE}/..`,
      `${BASE}/.`,
      `${BASE}/${real}%00`,
      `${BASE}/${real}%2F`,
      `${BASE}/.${real}.partial`,
      `${BASE}/20000101T000000000Z-00000000-0000-4000-8000-000000000000.eml`,
      `${BASE}/${encodeURIComponent(path.join(outboxDir, real!))}`,
    ];
    for (const url of attempts) {
      const res = await firstLook.inject({ url, headers: OPERATOR });
      expect({ url, status: res.statusCode }).toEqual({ url, status: 404 });
      expect(res.body).toContain('<h1>Page not found</h1>');
      expect(res.body).not.toContain('do-not-show');
      expect(res.body).not.toContain('operator notes');
    }
  });

  it('puts the guard it was given in front of the list and every message', async () => {
    const [real] = await emlFiles();
    const callsBefore = guardCalls;
    for (const url of [BASE, `${BASE}/${real}`, `${BASE}/..%2Fsecrets.json`]) {
      const res = await firstLook.inject({ url });
      expect(res.statusCode).toBe(403);
      expect(res.body).toBe('operators only');
    }
    expect(guardCalls - callsBefore).toBe(3);
  });

  it('has no outbox pages when a real SMTP relay is configured', async () => {
    const handle = await connectDatabase({ databaseUrl: database.url, dataDir: '/nonexistent' });
    const server = await buildApp({ config: testConfig(database.url), database: handle });
    try {
      await server.register(outboxRoutes, { prefix: '/check', preHandler: async () => undefined });
      const [real] = await emlFiles();
      for (const url of [BASE, `${BASE}/${real}`]) expect((await server.inject({ url, headers: OPERATOR })).statusCode).toBe(404);
    } finally {
      await server.close();
    }
  });
});

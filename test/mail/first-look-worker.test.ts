import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { simpleParser } from 'mailparser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { connectDatabase, type DatabaseHandle } from '../../src/db/connect.js';
import { migrateToLatest } from '../../src/db/migrator.js';
import { startMailWorker } from '../../src/mail/mail.worker.js';
import { testConfig } from '../harness/app.js';
import { eventually } from '../harness/eventually.js';
import { workerClock } from './worker-clock.js';

let dataDir: string;
let database: DatabaseHandle;

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'archway-first-look-mail-'));
  database = await connectDatabase({ databaseUrl: null, dataDir });
  await migrateToLatest(database.db);
});
afterAll(async () => {
  await database.close().catch(() => undefined);
  await rm(dataDir, { recursive: true, force: true });
});

describe('mail in first-look mode on the embedded database', () => {
  it('has the running worker deliver queued messages into the outbox, once each, and stops cleanly', async () => {
    const base = testConfig('postgres://unused@127.0.0.1:9/unused');
    const outboxDir = path.join(dataDir, 'outbox');
    const app = await buildApp({ config: { ...base, databaseUrl: null, mail: { ...base.mail, smtpUrl: null, outboxDir } }, database });
    const worker = workerClock();
    const stopWorker = startMailWorker(app.ctx, { now: worker.now, pollIntervalMs: 20 });
    try {
      for (const name of ['alice', 'bob', 'carol']) {
        await database.db
          .transaction()
          .execute((trx) =>
            app.ctx.mail.enqueue(trx, { to: `${name}@example.net`, template: 'test-message', data: { note: `for ${name}` } }),
          );
      }
      await eventually('three messages in the outbox', async () => (await readdir(outboxDir).catch(() => [])).length >= 3, {
        timeoutMs: 30_000,
      });
      // The worker looked at the queue once more: a second copy of any message would have been written by then.
      await worker.lookedAgain();
    } finally {
      await stopWorker();
    }
    const names = (await readdir(outboxDir)).sort();
    expect(names).toHaveLength(3);
    const texts = await Promise.all(names.map(async (name) => (await simpleParser(await readFile(path.join(outboxDir, name)))).text));
    expect(texts.map((text) => /Note from the operator: (for \w+)/.exec(text ?? '')?.[1]).sort()).toEqual([
      'for alice',
      'for bob',
      'for carol',
    ]);
    const rows = await database.db.selectFrom('mail_queue').select(['status', 'attempts', 'body']).execute();
    expect(rows).toEqual(Array.from({ length: 3 }, () => ({ status: 'sent', attempts: 1, body: null })));
    await app.close();
  });
});

// The counts /metrics reads from the database at scrape time, in one short read-only transaction.
import { sql, type Kysely, type Transaction } from 'kysely';
import type { ArchiveRequestState } from '../archives/archives.tables.js';
import type { Database } from '../db/database.js';

export interface OperationalCounts {
  /** Sign-in blocks (`sign_in`) and second-step blocks (`second_step`) in force now, by scope. */
  activeBlocks: Array<{ kind: 'sign_in' | 'second_step'; scope: 'ip' | 'user'; count: number }>;
  archiveRequests: Array<{ state: ArchiveRequestState; count: number }>;
  mailQueue: { pending: number; oldestCreatedAt: Date | null };
  /** One row per backup host the event sync has started on. */
  hosts: Array<{ host: string; syncedAt: Date | null; lastSyncFailed: boolean }>;
}

/** Reads everything in one transaction on one connection; the server ends it after `timeoutMs`. */
export async function readOperationalCounts(db: Kysely<Database>, now: Date, timeoutMs: number): Promise<OperationalCounts> {
  return db
    .transaction()
    .setAccessMode('read only')
    .execute(async (trx) => {
      await sql`select set_config('statement_timeout', ${String(timeoutMs)}, true)`.execute(trx);
      const signInBlocks = await activeBlocks(trx, 'blocks', now);
      const secondStepBlocks = await activeBlocks(trx, 'two_factor_blocks', now);
      const states = await trx
        .selectFrom('archive_requests')
        .select((eb) => ['state', eb.fn.countAll<string>().as('n')])
        .groupBy('state')
        .execute();
      const mail = await trx
        .selectFrom('mail_queue')
        .select((eb) => [eb.fn.countAll<string>().as('n'), eb.fn.min('created_at').as('oldest')])
        .where('status', '=', 'pending')
        .executeTakeFirstOrThrow();
      const hosts = await trx.selectFrom('backup_host_sync').select(['host', 'synced_at', 'last_error']).orderBy('host').execute();
      return {
        activeBlocks: [
          ...signInBlocks.map((r) => ({ kind: 'sign_in' as const, scope: r.scope, count: Number(r.n) })),
          ...secondStepBlocks.map((r) => ({ kind: 'second_step' as const, scope: r.scope, count: Number(r.n) })),
        ],
        archiveRequests: states.map((r) => ({ state: r.state, count: Number(r.n) })),
        mailQueue: { pending: Number(mail.n), oldestCreatedAt: mail.oldest === null ? null : new Date(mail.oldest) },
        hosts: hosts.map((r) => ({ host: r.host, syncedAt: r.synced_at, lastSyncFailed: r.last_error !== null })),
      };
    });
}

/** Blocks neither lifted nor run out, by scope; both block tables have the same columns for this. */
async function activeBlocks(trx: Transaction<Database>, table: 'blocks' | 'two_factor_blocks', now: Date) {
  return trx
    .selectFrom(table)
    .select((eb) => ['scope', eb.fn.countAll<string>().as('n')])
    .where('lifted_at', 'is', null)
    .where('until', '>', now)
    .groupBy('scope')
    .execute();
}

// Walks the audit trail's hash chain from its anchor to its head and names the first row that does not fit.
import { createHash } from 'node:crypto';
import { sql } from 'kysely';
import type { Db } from '../db/database.js';

export type ChainReport =
  | { intact: true; rows: number; headHash: string; anchorSeq: number }
  | { intact: false; rows: number; problem: string; row: { chainSeq: number; id: string | null; at: Date | null; action: string | null } };

const hex = (b: Buffer) => b.toString('hex');

/**
 * Recomputes every row's hash from the previous hash and the row's canonical text (the database's
 * `audit_row_text`, the text the chain trigger hashed), in chain order, in batches: memory does not
 * grow with the trail. Catches an edited row, a removed or reordered row, and removed newest rows
 * (the head no longer matches).
 */
export async function verifyAuditChain(db: Db, batchSize = 5000): Promise<ChainReport> {
  const chain = await db.selectFrom('audit_chain').selectAll().executeTakeFirst();
  if (chain === undefined) return broken(0, 'the chain has no head row (audit_chain is empty)', { chainSeq: 0 });
  let expectedSeq = Number(chain.anchor_seq) + 1;
  let previous = chain.anchor_hash;
  let rows = 0;
  for (;;) {
    const batch = await sql<{ chain_seq: string; id: string; at: Date; action: string; prev_hash: Buffer; hash: Buffer; text: string }>`
      select a.chain_seq, a.id, a.at, a.action, a.prev_hash, a.hash, audit_row_text(a) as text
      from audit_log a where a.chain_seq >= ${expectedSeq} order by a.chain_seq limit ${batchSize}`.execute(db);
    for (const r of batch.rows) {
      const at = { chainSeq: Number(r.chain_seq), id: String(r.id), at: r.at, action: r.action };
      if (Number(r.chain_seq) !== expectedSeq)
        return broken(rows, `row ${expectedSeq} of the chain is missing (the next one there is ${r.chain_seq})`, {
          ...at,
          chainSeq: expectedSeq,
        });
      if (!r.prev_hash.equals(previous)) return broken(rows, "its link to the previous row does not match that row's hash", at);
      const hash = createHash('sha256').update(previous).update(r.text, 'utf8').digest();
      if (!hash.equals(r.hash)) return broken(rows, 'its content does not match its hash: the row was changed after it was written', at);
      previous = r.hash;
      expectedSeq += 1;
      rows += 1;
    }
    if (batch.rows.length < batchSize) break;
  }
  if (expectedSeq - 1 !== Number(chain.head_seq) || !previous.equals(chain.head_hash))
    return broken(rows, `the chain ends at row ${expectedSeq - 1}, but its head is row ${chain.head_seq}: the newest rows were removed`, {
      chainSeq: expectedSeq,
    });
  return { intact: true, rows, headHash: hex(previous), anchorSeq: Number(chain.anchor_seq) };

  function broken(count: number, problem: string, row: { chainSeq: number; id?: string; at?: Date; action?: string }): ChainReport {
    return {
      intact: false,
      rows: count,
      problem,
      row: { chainSeq: row.chainSeq, id: row.id ?? null, at: row.at ?? null, action: row.action ?? null },
    };
  }
}

// Stores the subscription payments of a PayPal report with their customers: all or nothing, once per transaction.
import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/database.js';
import { ImportRefused } from '../accounts/user-import.js';
import { recordAudit } from '../users/audit.js';
import { readPayPalReport, type DateOrder } from './paypal-report.js';

export interface PaymentImportResult {
  added: number;
  /** Known transactions whose status changed since the last report (Pending to Completed, a refund). */
  updated: number;
  unchanged: number;
  /** Rows that are not subscription payments. */
  skipped: number;
  /** Lines of subscription payments no account has (only with `skipUnmatched`). */
  unmatched: number[];
}

/**
 * Reads the report and, in one transaction, stores each payment for the account whose PayPal
 * subscription id it names. A payment of an unknown subscription is a problem (nothing is written)
 * unless `skipUnmatched` says to leave it out. A transaction already stored is not added again;
 * only its status follows the newer report. The import itself goes into the audit log.
 */
export async function importPayments(
  db: Kysely<Database>,
  text: string,
  options: { dateOrder?: DateOrder; skipUnmatched?: boolean; actor: string; now: Date },
): Promise<PaymentImportResult> {
  const report = readPayPalReport(text, { dateOrder: options.dateOrder });
  if (report.problems.length > 0) throw new ImportRefused(report.problems);
  return db.transaction().execute(async (trx) => {
    const subscriptions = [...new Set(report.payments.map((p) => p.subscriptionId))];
    const owners =
      subscriptions.length === 0
        ? []
        : await trx
            .selectFrom('users')
            .select(['id', 'paypal_subscription_id'])
            .where('paypal_subscription_id', 'in', subscriptions)
            .execute();
    const ownersOf = new Map<string, string[]>();
    for (const o of owners) ownersOf.set(o.paypal_subscription_id!, [...(ownersOf.get(o.paypal_subscription_id!) ?? []), o.id]);

    const problems: Array<{ line: number; message: string }> = [];
    const unmatched: number[] = [];
    const rows = report.payments.flatMap((p) => {
      const ids = ownersOf.get(p.subscriptionId) ?? [];
      if (ids.length === 1) return [{ ...p, userId: ids[0]! }];
      if (ids.length > 1) problems.push({ line: p.line, message: `${ids.length} accounts have the subscription id ${p.subscriptionId}.` });
      else if (options.skipUnmatched) unmatched.push(p.line);
      else problems.push({ line: p.line, message: `no account has the PayPal subscription id ${p.subscriptionId}.` });
      return [];
    });
    if (problems.length > 0) throw new ImportRefused(problems);

    const result: PaymentImportResult = { added: 0, updated: 0, unchanged: 0, skipped: report.skipped, unmatched };
    for (const row of rows) {
      // xmax is 0 only for a row this statement inserted; an update of a known one returns it set.
      const stored = await trx
        .insertInto('payments')
        .values({
          user_id: row.userId,
          paid_at: row.paidAt,
          amount: row.amount,
          currency: row.currency,
          status: row.status,
          reference: row.transactionId,
        })
        .onConflict((oc) =>
          oc
            .column('reference')
            .doUpdateSet({ status: (eb) => eb.ref('excluded.status') })
            .where('payments.status', '<>', (eb) => eb.ref('excluded.status'))
            .where('payments.user_id', '=', (eb) => eb.ref('excluded.user_id')),
        )
        .returning(sql<boolean>`xmax = 0`.as('inserted'))
        .executeTakeFirst();
      if (stored === undefined) result.unchanged += 1;
      else if (stored.inserted) result.added += 1;
      else result.updated += 1;
    }
    await recordAudit(trx, {
      actor: options.actor,
      action: 'payments.imported',
      subject: null,
      detail: {
        added: result.added,
        updated: result.updated,
        unchanged: result.unchanged,
        skipped: result.skipped,
        unmatched: unmatched.length,
      },
      at: options.now,
    });
    return result;
  });
}

// The download receipt: an email to the archive's owner when the backup host reports the download complete.
import { formatBytes, formatUtc } from '../format.js';
import type { Transaction } from 'kysely';
import type { Database } from '../db/database.js';
import type { MailQueue } from '../mail/mail.service.js';

/** How the bytes arrived: a resumed download names its parts, and whose address the receipt shows. */
export function describeDelivery(parts: number | null): string {
  if (parts === null || parts <= 1) return 'in one piece';
  return `in ${parts} parts (a resumed download; the address above is the last part's)`;
}

/**
 * Queues the receipt for a request the event sync has just moved to "downloaded", in that same
 * transaction. receipt_queued_at is claimed first, so even a second call for the same request
 * queues nothing. Says whether it queued the email.
 */
export async function queueDownloadReceipt(
  trx: Transaction<Database>,
  mail: MailQueue,
  requestId: string,
  now: Date,
  publicUrl: string,
): Promise<boolean> {
  const claimed = await trx
    .updateTable('archive_requests')
    .set({ receipt_queued_at: now })
    .where('id', '=', requestId)
    .where('state', '=', 'downloaded')
    .where('receipt_queued_at', 'is', null)
    .returning(['user_id', 'snapshot', 'finished_at', 'downloaded_ip', 'downloaded_bytes', 'size_bytes', 'sha256', 'delivered_parts'])
    .executeTakeFirst();
  if (claimed === undefined) return false;
  const user = await trx.selectFrom('users').select('email').where('id', '=', claimed.user_id).executeTakeFirstOrThrow();
  const bytes = Number(claimed.downloaded_bytes ?? claimed.size_bytes ?? 0);
  const portal = publicUrl.replace(/\/+$/, '');
  await mail.enqueue(trx, {
    to: user.email,
    template: 'archive-downloaded',
    data: {
      snapshot: claimed.snapshot,
      at: formatUtc(claimed.finished_at ?? now),
      ip: claimed.downloaded_ip ?? 'an address the backup host did not record',
      size: `${formatBytes(bytes)} (${bytes} bytes)`,
      delivery: describeDelivery(claimed.delivered_parts),
      sha256: claimed.sha256 ?? 'not known',
      archiveUrl: `${portal}/archives/${requestId}`,
      devicesUrl: `${portal}/account/devices`,
      forgotPasswordUrl: `${portal}/forgot-password`,
    },
  });
  return true;
}

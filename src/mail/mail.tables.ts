// The mail queue's table type (migrations/0002_mail.sql), composed into the Database interface.
import type { ColumnType, Generated } from 'kysely';

export type MailStatus = 'pending' | 'sent' | 'failed';

export interface MailQueueTable {
  id: string;
  recipient: string;
  template: string;
  body: Buffer | null;
  status: Generated<MailStatus>;
  attempts: Generated<number>;
  next_attempt_at: ColumnType<Date, Date | undefined, Date>;
  last_error: string | null;
  created_at: ColumnType<Date, Date | undefined, never>;
  finished_at: Date | null;
}

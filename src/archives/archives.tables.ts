// Table types of archive requests and the backup host's copied events (migrations/0006_archive_requests.sql, 0007_archive_downloads.sql, 0014, 0015).
import type { ColumnType, Generated } from 'kysely';

export type ArchiveRequestState = 'requested' | 'building' | 'ready' | 'failed' | 'cancelled' | 'downloaded' | 'expired';

export interface ArchiveRequestsTable {
  id: Generated<string>;
  user_id: string;
  customer: string;
  /** The fleet host the archive is built on (migrations/0014); never changes after the insert. */
  backup_host: Generated<string>;
  snapshot: string;
  archive_id: string | null;
  state: Generated<ArchiveRequestState>;
  // bigint columns come back from pg as strings; kept as strings and converted where shown.
  bytes_written: ColumnType<string, string | number | undefined, string | number>;
  files_written: ColumnType<string, string | number | undefined, string | number>;
  percent: number | null;
  size_bytes: ColumnType<string | null, string | number | null | undefined, string | number | null>;
  sha256: string | null;
  failure_reason: string | null;
  download_file_name: string | null;
  requested_at: ColumnType<Date, Date | undefined, never>;
  requested_ip: string | null;
  ready_at: Date | null;
  expires_at: Date | null;
  finished_at: Date | null;
  next_poll_at: ColumnType<Date, Date | undefined, Date>;
  poll_failures: Generated<number>;
  notify_due_at: Date | null;
  notify_attempts: Generated<number>;
  notified_at: Date | null;
  last_notify_error: string | null;
  downloaded_ip: string | null;
  downloaded_bytes: ColumnType<string | null, string | number | null | undefined, string | number | null>;
  /** Bytes of the archive delivered so far over all its links, each once (migration 0015). */
  delivered_bytes: ColumnType<string | null, string | number | null | undefined, string | number | null>;
  delivered_parts: number | null;
  receipt_queued_at: Date | null;
}

export interface BackupHostEventsTable {
  host: string;
  seq: ColumnType<string, string | number, never>;
  at: Date;
  type: string;
  customer: string;
  archive_id: string;
  ip: string | null;
  bytes: ColumnType<string | null, string | number | null, string | number | null>;
  detail: string | null;
  received_at: ColumnType<Date, Date | undefined, never>;
}

export interface BackupHostSyncTable {
  host: string;
  last_seq: ColumnType<string, string | number | undefined, string | number>;
  synced_at: Date | null;
  last_error: string | null;
  /** Set while one instance copies events (between its calls to the backup host); another skips until then. */
  leased_until: Date | null;
}

// The table types Kysely checks every query against; one interface per table, composed here.
import type { ColumnType, Generated } from 'kysely';
import type { ArchiveRequestsTable, BackupHostEventsTable, BackupHostSyncTable } from '../archives/archives.tables.js';
import type { AccountTokensTable, PasswordResetRequestsTable, PaymentsTable, UsersTable } from '../accounts/accounts.tables.js';
import type { MailQueueTable } from '../mail/mail.tables.js';
import type { BlocksTable, SessionsTable, SignInAttemptsTable } from '../auth/auth.tables.js';
import type {
  RememberLoginsTable,
  TwoFactorBlocksTable,
  TwoFactorFailuresTable,
  TwoFactorRecoveryCodesTable,
  TwoFactorTable,
} from '../two-factor/two-factor.tables.js';

export interface AuditLogTable {
  id: Generated<string>;
  at: ColumnType<Date, Date | undefined, never>;
  actor: string | null;
  action: string;
  subject: string | null;
  ip: string | null;
  detail: ColumnType<Record<string, unknown>, string | undefined, string>;
}

export interface Database {
  audit_log: AuditLogTable;
  users: UsersTable;
  payments: PaymentsTable;
  account_tokens: AccountTokensTable;
  password_reset_requests: PasswordResetRequestsTable;
  mail_queue: MailQueueTable;
  sessions: SessionsTable;
  sign_in_attempts: SignInAttemptsTable;
  blocks: BlocksTable;
  two_factor: TwoFactorTable;
  two_factor_recovery_codes: TwoFactorRecoveryCodesTable;
  two_factor_failures: TwoFactorFailuresTable;
  two_factor_blocks: TwoFactorBlocksTable;
  remember_logins: RememberLoginsTable;
  archive_requests: ArchiveRequestsTable;
  backup_host_events: BackupHostEventsTable;
  backup_host_sync: BackupHostSyncTable;
}

// The table types Kysely checks every query against; one interface per table, composed here.
import type { Kysely, Transaction } from 'kysely';
import type { ArchiveRequestsTable, BackupHostEventsTable, BackupHostSyncTable } from '../archives/archives.tables.js';
import type { AccountTokensTable, PasswordResetRequestsTable, PaymentsTable } from '../accounts/accounts.tables.js';
import type { MailQueueTable } from '../mail/mail.tables.js';
import type { RateLimitHitsTable } from '../http/rate-limit-store.js';
import type {
  AuditChainTable,
  AuditLogTable,
  BlocksTable,
  RequestLogHourlyTable,
  RequestLogTable,
  SessionsTable,
  SignInAttemptsTable,
  UsersTable,
} from '../users/users.tables.js';
import type {
  RememberLoginsTable,
  TwoFactorBlocksTable,
  TwoFactorFailuresTable,
  TwoFactorRecoveryCodesTable,
  TwoFactorTable,
} from '../two-factor/two-factor.tables.js';

export interface Database {
  audit_log: AuditLogTable;
  audit_chain: AuditChainTable;
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
  request_log: RequestLogTable;
  request_log_hourly: RequestLogHourlyTable;
  rate_limit_hits: RateLimitHitsTable;
}

/** What a repository function takes: the database, or the transaction a service opened. */
export type Db = Kysely<Database> | Transaction<Database>;

// Table types of the users core: users, sessions, sign-in attempts, brute-force blocks, the audit log and the request log.
import type { ColumnType, Generated } from 'kysely';

export type UserRole = 'customer' | 'operator';
export type UserStatus = 'invited' | 'active' | 'suspended';
export type SignInOutcome = 'success' | 'failure' | 'blocked' | 'refused';
export type BlockScope = 'ip' | 'user';

export interface SessionsTable {
  id: string;
  user_id: string | null;
  data: ColumnType<Record<string, unknown>, string, string>;
  created_at: Date;
  last_seen_at: Date;
  expires_at: Date;
  ip: string | null;
  user_agent: string | null;
}

export interface SignInAttemptsTable {
  id: Generated<string>;
  at: Date;
  email_tried: string | null;
  user_id: string | null;
  ip: string | null;
  outcome: SignInOutcome;
  reason: string;
}

export interface BlocksTable {
  id: Generated<string>;
  scope: BlockScope;
  key: string;
  until: Date;
  level: number;
  created_at: Date;
  lifted_at: Date | null;
  lifted_by: string | null;
}

export interface UsersTable {
  id: Generated<string>;
  email: string;
  role: UserRole;
  domain: string | null;
  plan: string | null;
  paypal_subscription_id: string | null;
  status: ColumnType<UserStatus, UserStatus | undefined, UserStatus>;
  backup_host: string | null;
  password_hash: string | null;
  created_at: ColumnType<Date, Date | undefined, never>;
}

export interface AuditLogTable {
  id: Generated<string>;
  at: ColumnType<Date, Date | undefined, never>;
  actor: string | null;
  action: string;
  subject: string | null;
  ip: string | null;
  detail: ColumnType<Record<string, unknown>, string | undefined, string>;
  /** Set by the chain trigger (migration 0012): the row's place in the chain and its hashes. */
  chain_seq: ColumnType<string, never, never>;
  prev_hash: ColumnType<Buffer, never, never>;
  hash: ColumnType<Buffer, never, never>;
}

export interface AuditChainTable {
  singleton: ColumnType<boolean, never, never>;
  head_seq: string;
  head_hash: Buffer;
  anchor_seq: string;
  anchor_hash: Buffer;
}

export type LogKind = 'sign-in' | 'two-factor' | 'block' | 'archive' | 'link' | 'download' | 'account';
export type LogOutcome = 'success' | 'failure' | 'blocked' | 'refused' | 'info';

export interface RequestLogTable {
  id: Generated<string>;
  at: Date;
  user_id: string | null;
  ip: string | null;
  kind: LogKind;
  event: string;
  outcome: LogOutcome;
  detail: ColumnType<Record<string, unknown>, string | undefined, string>;
}

export interface RequestLogHourlyTable {
  hour: Date;
  kind: LogKind;
  event: string;
  outcome: LogOutcome;
  n: ColumnType<string, number, number>;
}

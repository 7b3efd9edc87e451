// Table types of the auth module: sessions, sign-in attempts and brute-force blocks.
import type { ColumnType, Generated } from 'kysely';

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

// Table types of two-factor sign-in and remember-me logins (migrations/0005_two_factor.sql).
import type { Generated } from 'kysely';

export interface TwoFactorTable {
  user_id: string;
  secret_encrypted: string;
  created_at: Date;
  enabled_at: Date | null;
  /** bigint: pg returns it as a string. */
  last_used_step: string | null;
}

export interface TwoFactorRecoveryCodesTable {
  id: Generated<string>;
  user_id: string;
  code_hash: Buffer;
  created_at: Date;
  used_at: Date | null;
}

export interface TwoFactorFailuresTable {
  id: Generated<string>;
  at: Date;
  user_id: string;
  ip: string | null;
}

export interface TwoFactorBlocksTable {
  id: Generated<string>;
  scope: 'ip' | 'user';
  key: string;
  until: Date;
  created_at: Date;
  lifted_at: Date | null;
  lifted_by: string | null;
}

export interface RememberLoginsTable {
  id: Generated<string>;
  user_id: string;
  series: string;
  token_hash: Buffer;
  created_at: Date;
  last_used_at: Date;
  expires_at: Date;
  replaced_at: Date | null;
  replaced_by: string | null;
  session_id: string | null;
  ip: string | null;
  user_agent: string | null;
}

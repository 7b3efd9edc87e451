// Table types of the accounts module: payments, invitation/reset tokens and reset requests.
import type { ColumnType, Generated } from 'kysely';

export type AccountTokenPurpose = 'invitation' | 'password_reset';

export interface PaymentsTable {
  id: Generated<string>;
  user_id: string;
  paid_at: Date;
  /** numeric(12,2): pg returns it as a string so no cent is lost to floating point. */
  amount: ColumnType<string, string, string>;
  currency: string;
  /** PayPal's transaction id. */
  reference: string;
  /** PayPal's word for it: Completed, Pending, Refunded, ... */
  status: string;
}

export interface AccountTokensTable {
  id: Generated<string>;
  user_id: string;
  purpose: AccountTokenPurpose;
  selector: string;
  verifier_hash: Buffer;
  created_at: ColumnType<Date, Date | undefined, never>;
  expires_at: Date;
  used_at: Date | null;
}

/** One "forgot password" request, known address or not: the per-address limit counts these. */
export interface PasswordResetRequestsTable {
  id: Generated<string>;
  at: Date;
  ip: string;
}

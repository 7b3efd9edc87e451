// The table types Kysely checks every query against; one interface per table, composed here.
import type { ColumnType, Generated } from 'kysely';

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
}

// Reads and writes of the users table; plain functions taking the database or a transaction.
import { sql, type Selectable } from 'kysely';
import type { Db } from '../db/database.js';
import type { UserRole, UserStatus, UsersTable } from './users.tables.js';

export interface User {
  id: string;
  email: string;
  role: UserRole;
  domain: string | null;
  plan: string | null;
  paypalSubscriptionId: string | null;
  status: UserStatus;
  backupHost: string | null;
  /** Null until the user has set a password through an invitation link. */
  passwordHash: string | null;
  createdAt: Date;
}

export function toUser(row: Selectable<UsersTable>): User {
  return {
    id: row.id,
    email: row.email,
    role: row.role,
    domain: row.domain,
    plan: row.plan,
    paypalSubscriptionId: row.paypal_subscription_id,
    status: row.status,
    backupHost: row.backup_host,
    passwordHash: row.password_hash,
    createdAt: row.created_at,
  };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Finds a user whatever the case of the address typed; null when there is none. */
/** The domain as the unique index compares it (migration 0008): trimmed, lowercase, without a trailing dot. */
const normalisedDomain = sql<string>`rtrim(lower(btrim(domain)), '.')`;

export function domainKey(domain: string): string {
  return domain.trim().toLowerCase().replace(/\.+$/, '');
}

/** Which of these domains an account already has (compared normalised), as the accounts store them. */
export async function takenDomains(db: Db, domains: string[]): Promise<Set<string>> {
  if (domains.length === 0) return new Set();
  const rows = await db
    .selectFrom('users')
    .select(normalisedDomain.as('key'))
    .where(normalisedDomain, 'in', domains.map(domainKey))
    .execute();
  return new Set(rows.map((r) => r.key));
}

export async function findUserByEmail(db: Db, email: string): Promise<User | null> {
  const row = await db
    .selectFrom('users')
    .selectAll()
    .where(sql<string>`lower(email)`, '=', email.trim().toLowerCase())
    .executeTakeFirst();
  return row === undefined ? null : toUser(row);
}

/** Finds a user by id; a malformed id (from an old cookie, a URL) is simply not found. */
export async function findUserById(db: Db, id: string): Promise<User | null> {
  if (!UUID.test(id)) return null;
  const row = await db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
  return row === undefined ? null : toUser(row);
}

export interface NewUser {
  email: string;
  role: UserRole;
  domain: string | null;
  plan: string | null;
  paypalSubscriptionId?: string | null;
  backupHost?: string | null;
  status?: UserStatus;
  passwordHash?: string | null;
}

export async function insertUser(db: Db, user: NewUser): Promise<User> {
  const row = await db
    .insertInto('users')
    .values({
      email: user.email,
      role: user.role,
      domain: user.domain,
      plan: user.plan,
      paypal_subscription_id: user.paypalSubscriptionId ?? null,
      backup_host: user.backupHost ?? null,
      status: user.status ?? 'invited',
      password_hash: user.passwordHash ?? null,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
  return toUser(row);
}

export async function countUsers(db: Db): Promise<number> {
  const row = await db
    .selectFrom('users')
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

// Doctor checks of the database: it answers, every migration is applied, and the portal's role holds no more power than it needs.
import { sql, type Kysely } from 'kysely';
import type { Config } from '../config.js';
import { connectDatabase } from '../db/connect.js';
import type { Database } from '../db/database.js';
import { pendingMigrations } from '../db/migrator.js';
import { describeError, fail, notApplicable, pass, skipped, type CheckResult } from './check-result.js';

const REACHABLE = ['database.reachable', 'database reachable'] as const;
const MIGRATIONS = ['database.migrations', 'database migrations current'] as const;
const ROLE = ['database.role', 'database role restricted'] as const;
const ARCHIVE_HOSTS = ['database.archive-hosts', 'archives on configured backup hosts'] as const;

interface RoleRow {
  role: string;
  database: string;
  rolsuper: boolean;
  rolcreatedb: boolean;
  rolcreaterole: boolean;
  rolbypassrls: boolean;
  can_create: boolean;
  can_create_tables: boolean;
  can_rewrite_audit: boolean;
}

export async function checkDatabase(config: Config): Promise<CheckResult[]> {
  if (config.databaseUrl === null) {
    // Opening the embedded database would take the lock a running first-look portal holds.
    const why = 'first look uses the embedded database, which `npm start` migrates itself';
    return [
      notApplicable(...REACHABLE, why),
      notApplicable(...MIGRATIONS, why),
      notApplicable(...ROLE, why),
      notApplicable(...ARCHIVE_HOSTS, why),
    ];
  }
  const database = await connectDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, poolSize: 1 });
  try {
    let version: string;
    try {
      const { rows } = await sql<{ server_version: string }>`show server_version`.execute(database.db);
      version = rows[0]?.server_version ?? 'unknown version';
    } catch (error) {
      const because = 'the database is not reachable';
      return [
        fail(
          ...REACHABLE,
          describeError(error),
          'start PostgreSQL or correct the host, port, database, user or password in ARCHWAY_DATABASE_URL',
        ),
        skipped(...MIGRATIONS, because),
        skipped(...ROLE, because),
        skipped(...ARCHIVE_HOSTS, because),
      ];
    }
    const migrations = await checkMigrations(database.db);
    const hostNames = config.backupHosts.hosts.map((h) => h.name);
    return [
      pass(...REACHABLE, `PostgreSQL ${version}`),
      migrations,
      await checkRole(database.db),
      migrations.status === 'pass'
        ? await checkArchiveHosts(database.db, hostNames)
        : skipped(...ARCHIVE_HOSTS, 'the database migrations are not current'),
    ];
  } finally {
    await database.close();
  }
}

async function checkMigrations(db: Kysely<Database>): Promise<CheckResult> {
  try {
    const pending = await pendingMigrations(db);
    if (pending.length === 0) return pass(...MIGRATIONS, 'every file in migrations/ is applied');
    return fail(...MIGRATIONS, `${pending.length} pending: ${pending.join(', ')}`, 'run "archway migrate"');
  } catch (error) {
    return fail(
      ...MIGRATIONS,
      `cannot read the applied migrations: ${describeError(error)}`,
      "let the portal's database role read the kysely_migration table",
    );
  }
}

/**
 * The portal runs as a login role that is a member of archway_portal and nothing more; migrations
 * run as the tables' owner (README, "Operations"). So the portal's role needs no power beyond
 * reading and writing rows, and must not be able to rewrite the audit trail.
 */
async function checkRole(db: Kysely<Database>): Promise<CheckResult> {
  const { rows } = await sql<RoleRow>`
    select current_user as role, current_database() as database, r.rolsuper, r.rolcreatedb, r.rolcreaterole, r.rolbypassrls,
           has_database_privilege(current_database(), 'CREATE') as can_create,
           has_schema_privilege('public', 'CREATE') as can_create_tables,
           to_regclass('public.audit_log') is not null
             and (has_table_privilege('public.audit_log', 'UPDATE') or has_table_privilege('public.audit_log', 'DELETE')) as can_rewrite_audit
    from pg_roles r where r.rolname = current_user`.execute(db);
  const row = rows[0];
  if (row === undefined) return fail(...ROLE, 'the current role is not in pg_roles', 'connect as an ordinary login role');
  const powers = [
    row.rolsuper ? 'is a superuser' : null,
    row.rolcreatedb ? 'may create databases (CREATEDB)' : null,
    row.rolcreaterole ? 'may create roles (CREATEROLE)' : null,
    row.rolbypassrls ? 'bypasses row-level security (BYPASSRLS)' : null,
    row.can_create ? 'may create schemas in the database (CREATE on the database, e.g. as its owner)' : null,
    row.can_create_tables ? 'may create tables (CREATE on schema public)' : null,
    row.can_rewrite_audit ? 'may rewrite or delete audit rows (UPDATE or DELETE on audit_log, e.g. as the owner of the tables)' : null,
  ].filter((p): p is string => p !== null);
  if (powers.length === 0)
    return pass(...ROLE, `role ${row.role} cannot create databases, roles, schemas or tables, nor rewrite the audit trail`);
  if (row.rolsuper) {
    // Taking superuser from the role may lock the operator out; the portal gets its own role instead.
    const fix = `give the portal its own login role (not ${row.role}), a member of archway_portal only, and name it in ARCHWAY_DATABASE_URL (README, "Operations")`;
    return fail(...ROLE, `role ${row.role} ${powers.join(', ')}`, fix);
  }
  return fail(
    ...ROLE,
    `role ${row.role} ${powers.join(', ')}`,
    `as a superuser run: ALTER ROLE ${row.role} NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS; ALTER DATABASE ${row.database} OWNER TO postgres; ` +
      `REVOKE CREATE ON DATABASE ${row.database} FROM ${row.role}, PUBLIC; REVOKE CREATE ON SCHEMA public FROM ${row.role}, PUBLIC; ` +
      `GRANT archway_portal TO ${row.role}; and let another role own the tables and run "archway migrate" (README, "Operations")`,
  );
}

/**
 * An archive is served only by the host it was built on, so renaming or removing that host in the
 * configuration leaves the archives still being built or ready there out of their customers' reach.
 */
async function checkArchiveHosts(db: Kysely<Database>, hostNames: readonly string[]): Promise<CheckResult> {
  let query = db
    .selectFrom('archive_requests')
    .select(['backup_host', (eb) => eb.fn.countAll<string>().as('n')])
    .where('state', 'in', ['requested', 'building', 'ready']);
  if (hostNames.length > 0) query = query.where('backup_host', 'not in', hostNames);
  const stranded = await query.groupBy('backup_host').orderBy('backup_host').execute();
  if (stranded.length === 0) return pass(...ARCHIVE_HOSTS, 'every archive being built or ready is on a configured host');
  const total = stranded.reduce((sum, row) => sum + Number(row.n), 0);
  return fail(
    ...ARCHIVE_HOSTS,
    `${total} ${total === 1 ? 'archive' : 'archives'} being built or ready ${total === 1 ? 'is' : 'are'} on hosts the configuration does not name: ` +
      `${stranded.map((row) => `${row.backup_host} (${row.n})`).join(', ')}; their customers are told the service is unavailable`,
    'put these hosts back in the configuration under the same names (ARCHWAY_BACKUP_HOSTS_FILE, or ARCHWAY_BACKUP_HOST_NAME for one host) until their archives are downloaded or expire',
  );
}

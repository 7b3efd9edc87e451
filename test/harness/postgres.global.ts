// Vitest global setup: one throwaway PostgreSQL cluster for the run, with a migrated template database.
import type { TestProject } from 'vitest/node';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { migrateToLatest } from '../../src/db/migrator.js';
import { startCluster } from './postgres-cluster.js';

export const TEMPLATE_DATABASE = 'archway_template';
/** The login role test portals connect as: a member of archway_portal and nothing more. */
export const PORTAL_LOGIN = 'archway_test_portal';

declare module 'vitest' {
  export interface ProvidedContext {
    pgAdminUrl: string;
    pgTemplate: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const given = process.env.ARCHWAY_TEST_DATABASE_URL;
  const cluster = given ? null : await startCluster();
  const adminUrl = given ?? cluster!.adminUrl;
  const template = given ? `${TEMPLATE_DATABASE}_${process.pid}` : TEMPLATE_DATABASE;

  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`drop database if exists ${template}`);
  await admin.query(`create database ${template}`);
  await admin.end();

  const templateUrl = new URL(adminUrl);
  templateUrl.pathname = `/${template}`;
  const db = new Kysely<unknown>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: templateUrl.href, max: 1 }) }) });
  try {
    await migrateToLatest(db);
  } finally {
    await db.destroy();
  }

  // The portal runs as a login role holding only the grants migration 0012 gives archway_portal,
  // as in production (docs/OPERATIONS.md): it cannot rewrite or delete audit rows.
  const roles = new pg.Client({ connectionString: adminUrl });
  await roles.connect();
  try {
    await roles.query(`do $$ begin
      if not exists (select 1 from pg_roles where rolname = '${PORTAL_LOGIN}') then create role ${PORTAL_LOGIN} login; end if;
    end $$`);
    await roles.query(`grant archway_portal to ${PORTAL_LOGIN}`);
  } finally {
    await roles.end();
  }

  project.provide('pgAdminUrl', adminUrl);
  project.provide('pgTemplate', template);

  return async () => {
    if (cluster) {
      await cluster.stop();
    } else {
      const cleanup = new pg.Client({ connectionString: adminUrl });
      await cleanup.connect();
      await cleanup.query(`drop database if exists ${template}`);
      await cleanup.end();
    }
  };
}

// Gives a test file its own PostgreSQL database, copied from the migrated template, dropped afterwards.
import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';
import pg from 'pg';
import { connectDatabase, type DatabaseHandle } from '../../src/db/connect.js';
import { PORTAL_LOGIN } from './postgres.global.js';

export interface TestDatabase {
  /** As the portal's role (archway_portal), the way the portal connects in production. */
  url: string;
  /** As the owner of the tables, for what only an administrator may do (migrate, tamper in a test). */
  ownerUrl: string;
  name: string;
  handle: DatabaseHandle;
  drop(): Promise<void>;
}

async function admin<T>(run: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: inject('pgAdminUrl') });
  await client.connect();
  try {
    return await run(client);
  } finally {
    await client.end();
  }
}

/** An empty database with no migrations applied, for migration tests. */
export async function createEmptyDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `t_${randomBytes(6).toString('hex')}`;
  await admin((c) => c.query(`create database ${name}`));
  return { url: databaseUrl(name), drop: () => dropDatabase(name) };
}

export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `t_${randomBytes(6).toString('hex')}`;
  await admin((c) => c.query(`create database ${name} template ${inject('pgTemplate')}`));
  const ownerUrl = databaseUrl(name);
  const url = portalUrl(ownerUrl);
  const handle = await connectDatabase({ databaseUrl: url, dataDir: '/nonexistent' });
  return {
    url,
    ownerUrl,
    name,
    handle,
    async drop() {
      await handle.close().catch(() => undefined);
      await dropDatabase(name);
    },
  };
}

function databaseUrl(name: string): string {
  const url = new URL(inject('pgAdminUrl'));
  url.pathname = `/${name}`;
  return url.href;
}

function portalUrl(ownerUrl: string): string {
  const url = new URL(ownerUrl);
  url.username = PORTAL_LOGIN;
  url.password = '';
  return url.href;
}

async function dropDatabase(name: string): Promise<void> {
  await admin((c) => c.query(`drop database if exists ${name} with (force)`));
}

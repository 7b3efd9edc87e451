// Names an embedded data directory this PGlite cannot open (another PostgreSQL major, or damaged) before it fails obscurely.
import { readFileSync } from 'node:fs';
import path from 'node:path';

/** The PostgreSQL major that the pinned @electric-sql/pglite runs (0.5.x: 18). A test holds it to what PGlite writes. */
export const EMBEDDED_POSTGRES_MAJOR = '18';

const START_OVER =
  'First look keeps only demo data: stop Archway, move that directory aside (or delete the whole data directory) ' +
  'and start again; for data you must keep, run Archway on PostgreSQL with ARCHWAY_DATABASE_URL.';

export class EmbeddedDatabaseUnusable extends Error {
  constructor(
    readonly dir: string,
    reason: string,
  ) {
    super(`The embedded database in ${dir} ${reason}. ${START_OVER}`);
    this.name = 'EmbeddedDatabaseUnusable';
  }
}

/** Throws EmbeddedDatabaseUnusable when `dir` holds a PostgreSQL data directory of another major; an empty or new `dir` passes. */
export function checkEmbeddedDataDirectory(dir: string): void {
  let found: string;
  try {
    found = readFileSync(path.join(dir, 'PG_VERSION'), 'utf8').trim();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  if (found === EMBEDDED_POSTGRES_MAJOR) return;
  const made = /^\d+$/.test(found)
    ? `${Number(found) < Number(EMBEDDED_POSTGRES_MAJOR) ? 'an older' : 'a newer'} Archway (PostgreSQL ${found})`
    : 'an unknown program';
  throw new EmbeddedDatabaseUnusable(
    dir,
    `was made by ${made}; this Archway's embedded PostgreSQL is ${EMBEDDED_POSTGRES_MAJOR} and cannot open it`,
  );
}

import { readdir, readFile } from 'node:fs/promises';
import type { Pool, PoolClient } from 'pg';
import { holdConnection } from './connection';
import { defaultSchemaName, quoteIdentifier, validateIdentifier } from './identifier';
import { shippedMigrationFiles } from './shipped-migrations';

/** One versioned migration. */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/** Options of {@link migrate}. */
export interface MigrateOptions {
  /** Schema that holds onceflow's tables; created when missing. Default: `onceflow`. */
  schema?: string;
  /**
   * Folder of `NNNN_name.sql` files to apply instead of onceflow's own: lets an application version its
   * tables with the same migrator (each folder needs a schema of its own, where its versions are kept).
   * Default: onceflow's migrations.
   */
  directory?: string;
}

/** What {@link migrate} did. */
export interface MigrateResult {
  schema: string;
  applied: Migration[];
  /** Highest version present after the run. */
  version: number;
}

const fileNamePattern = /^(\d{4})_([a-z0-9_]+)\.sql$/;

/**
 * Loads the shipped migrations, rendered for `schema`: `{{schema}}` becomes the quoted schema and
 * `{{schema_name}}` its validated bare name (for derived names such as NOTIFY channels).
 */
export async function loadMigrations(
  schema: string = defaultSchemaName,
  directory?: string,
): Promise<Migration[]> {
  const quoted = quoteIdentifier(schema);
  const files = directory === undefined ? shippedMigrationFiles() : await readMigrationFiles(directory);
  return files
    .filter(({ file }) => fileNamePattern.test(file))
    .sort((a, b) => (a.file < b.file ? -1 : 1))
    .map(({ file, text }) => {
      const [, version, name] = fileNamePattern.exec(file)!;
      return {
        version: Number(version),
        name: name!,
        sql: text.replaceAll('{{schema}}', quoted).replaceAll('{{schema_name}}', schema),
      };
    });
}

async function readMigrationFiles(directory: string): Promise<Array<{ file: string; text: string }>> {
  const folder = directory.endsWith('/') ? directory : `${directory}/`;
  const files = (await readdir(folder)).filter((file) => fileNamePattern.test(file));
  return Promise.all(files.map(async (file) => ({ file, text: await readFile(`${folder}${file}`, 'utf8') })));
}

/**
 * Brings onceflow's tables in `schema` (or an application's, with `directory`) up to date. Safe to run from several processes at once: a
 * transaction-scoped advisory lock serialises them, and each migration commits with its version row.
 */
export async function migrate(pool: Pool, options: MigrateOptions = {}): Promise<MigrateResult> {
  const schema = validateIdentifier(options.schema ?? defaultSchemaName);
  const quoted = quoteIdentifier(schema);
  const migrations = await loadMigrations(schema, options.directory);
  const held = await holdConnection(pool);
  const { client } = held;
  const applied: Migration[] = [];
  try {
    await client.query('BEGIN');
    await lockSchema(client, schema);
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${quoted}`);
    await client.query(
      `CREATE TABLE IF NOT EXISTS ${quoted}.schema_migrations (
         version integer PRIMARY KEY,
         name text NOT NULL,
         applied_at timestamptz NOT NULL DEFAULT now())`,
    );
    const { rows } = await client.query<{ version: number }>(
      `SELECT version FROM ${quoted}.schema_migrations`,
    );
    const done = new Set(rows.map((row) => row.version));
    for (const migration of migrations) {
      if (done.has(migration.version)) continue;
      await client.query(migration.sql);
      await client.query(`INSERT INTO ${quoted}.schema_migrations (version, name) VALUES ($1, $2)`, [
        migration.version,
        migration.name,
      ]);
      applied.push(migration);
    }
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    held.release();
  }
  return { schema, applied, version: migrations.at(-1)?.version ?? 0 };
}

async function lockSchema(client: PoolClient, schema: string): Promise<void> {
  await client.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`onceflow:migrate:${schema}`]);
}

import { OnceflowError } from '@onceflow/core';

/**
 * SQLSTATEs of a schema without onceflow's objects: undefined table (42P01), undefined function
 * (42883), undefined column (42703), invalid schema name (3F000).
 */
const missingObjectStates: ReadonlySet<string> = new Set(['42P01', '42883', '42703', '3F000']);

/**
 * `error` as OF_SCHEMA_MISMATCH when Postgres says an onceflow table, function or column is missing
 * from `schema` (never migrated, or migrated by an older onceflow), with the fix in the message;
 * any other error unchanged.
 */
export function schemaMismatch(error: unknown, schema: string): unknown {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== 'string' || !missingObjectStates.has(code)) return error;
  return new OnceflowError(
    'OF_SCHEMA_MISMATCH',
    `schema ${schema} lacks onceflow's tables or functions (${error instanceof Error ? error.message : String(error)}); run \`onceflow migrate --schema ${schema}\` or migrate(pool, { schema: '${schema}' })`,
    { cause: error, details: { schema, sqlState: code } },
  );
}

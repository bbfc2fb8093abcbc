// Identifier validation is pure and lives in @onceflow/core, so that tools such as the CLI can check a
// schema name without loading the Postgres stack; this package re-exports it under the same names.
export { defaultSchemaName, quoteIdentifier, validateIdentifier } from '@onceflow/core';

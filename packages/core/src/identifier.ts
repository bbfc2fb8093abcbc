import { OnceflowError } from './errors';

/** Default schema holding onceflow's tables. */
export const defaultSchemaName = 'onceflow';

// Lower-case only, so the quoted and unquoted spellings name the same object; short enough that
// derived names (indexes, channels) stay under Postgres's 63-byte limit.
const identifierPattern = /^[a-z_][a-z0-9_]{0,47}$/;

/**
 * Checks that `name` is a plain lower-case SQL identifier (letters, digits, underscore; at most 48
 * characters) and returns it. Every user-configurable identifier passes through here.
 */
export function validateIdentifier(name: unknown, what = 'schema'): string {
  if (typeof name !== 'string' || !identifierPattern.test(name)) {
    throw new OnceflowError(
      'OF_INVALID_IDENTIFIER',
      `${what} name ${JSON.stringify(name)} is not allowed: use 1-48 characters of a-z, 0-9 and _, starting with a letter or _`,
    );
  }
  return name;
}

/** Validates and double-quotes an identifier for splicing into SQL. */
export function quoteIdentifier(name: string, what = 'schema'): string {
  return `"${validateIdentifier(name, what)}"`;
}

import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** One SQL file of onceflow's own migrations, as shipped. */
export interface ShippedMigrationFile {
  file: string;
  text: string;
}

/**
 * onceflow's migration files. Running from sources they are read from the package's `migrations/`
 * folder; the build replaces this module with one that holds the files' text (see the root
 * tsdown.config.ts), so built code — and any application bundle made from it — never looks for
 * SQL files on disk.
 */
export function shippedMigrationFiles(): ShippedMigrationFile[] {
  const directory = fileURLToPath(new URL('../migrations/', import.meta.url));
  return readdirSync(directory)
    .filter((file) => file.endsWith('.sql'))
    .sort()
    .map((file) => ({ file, text: readFileSync(`${directory}${file}`, 'utf8') }));
}

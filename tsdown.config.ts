// One build for every package, run from the package's folder (`pnpm -r build`, or `pnpm build` at the
// root): src/index.ts → dist/index.js (ESM) + dist/index.d.ts + source maps. Each package is bundled to
// one file, so the published JavaScript and declarations hold no extensionless relative imports and
// resolve the same under NodeNext, Node16 and Bundler. Dependencies and peers stay external.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { defineConfig, type UserConfig } from 'tsdown';

type Plugin = NonNullable<Extract<UserConfig['plugins'], unknown[]>>[number];

/**
 * Replaces @onceflow/postgres's `shipped-migrations.ts` (which reads `migrations/*.sql` from disk when
 * running from sources) with a module holding the files' text, so `migrate()` works from the built
 * package and from any application bundle made of it, wherever its files end up.
 */
function embedMigrations(packageDir: string): Plugin {
  return {
    name: 'onceflow:embed-migrations',
    load: {
      filter: { id: /[\\/]src[\\/]shipped-migrations\.ts$/ },
      handler() {
        const directory = join(packageDir, 'migrations');
        const files = readdirSync(directory)
          .filter((file) => file.endsWith('.sql'))
          .sort()
          .map((file) => ({ file, text: readFileSync(join(directory, file), 'utf8') }));
        return {
          code: `export function shippedMigrationFiles() {\n  return ${JSON.stringify(files, null, 2)};\n}\n`,
          moduleType: 'js',
        };
      },
    },
  };
}

const packageDir = process.cwd();

export default defineConfig({
  cwd: packageDir,
  entry: [join(packageDir, 'src/index.ts')],
  format: 'esm',
  platform: 'node',
  target: 'node20.19',
  fixedExtension: false,
  sourcemap: true,
  dts: true,
  clean: true,
  // Written by hand (see each package.json): the `@onceflow/source` condition for the workspace, the
  // published `exports` under publishConfig.
  exports: false,
  checks: { pluginTimings: false },
  plugins: [embedMigrations(packageDir)],
});

import { fileURLToPath } from 'node:url';
import { build, type Plugin } from 'esbuild';

/** The bundled worker entry, plain JavaScript that `node` runs without a TypeScript loader. */
export const builtWorkerEntry = fileURLToPath(new URL('../dist/workers.mjs', import.meta.url));

const source = fileURLToPath(new URL('./workers/main.ts', import.meta.url));

/**
 * Leaves every npm package outside the bundle, imported by its resolved absolute path (so that a
 * dependency of an onceflow package is found wherever pnpm put it), and compiles onceflow's own
 * packages from their sources into it.
 */
const externalPackages: Plugin = {
  name: 'external-npm-packages',
  setup(on) {
    on.onResolve({ filter: /^[^./]/ }, async (args) => {
      if (args.path.startsWith('@onceflow/') || args.path.startsWith('node:')) return undefined;
      if (args.pluginData === 'resolving') return undefined;
      const resolved = await on.resolve(args.path, {
        kind: args.kind,
        resolveDir: args.resolveDir,
        importer: args.importer,
        pluginData: 'resolving',
      });
      if (resolved.errors.length > 0) return { errors: resolved.errors };
      return { path: resolved.path, external: true };
    });
  },
};

/**
 * Compiles the bench workers and onceflow's packages (their TypeScript sources, the
 * `@onceflow/source` export condition) into one ES module with esbuild, in about a second. The
 * workers then run on plain Node: their peak RSS and CPU are those of a built application, without
 * a TypeScript loader compiling modules in the process.
 */
export async function buildWorkers(): Promise<string> {
  await build({
    entryPoints: [source],
    outfile: builtWorkerEntry,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    sourcemap: 'linked',
    conditions: ['@onceflow/source'],
    plugins: [externalPackages],
    logLevel: 'error',
    // Bundled CommonJS code (none expected) would need require(); give the module one.
    banner: {
      js: "import { createRequire as __benchRequire } from 'node:module'; const require = __benchRequire(import.meta.url);",
    },
  });
  return builtWorkerEntry;
}

// The public surface of every package: the values and the types its src/index.ts exports, read
// through the TypeScript compiler. `pnpm exec tsx tools/public-surface.ts [--json]` prints it;
// test/exports.test.ts pins it.
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

/** Exported values and types of one package, sorted. */
export interface PackageSurface {
  values: string[];
  types: string[];
}

/** The surface of every package under packages/, by package name. */
export function publicSurface(): Record<string, PackageSurface> {
  const root = fileURLToPath(new URL('..', import.meta.url));
  const packages = readdirSync(`${root}packages`).sort();
  const entries = packages.map((name) => `${root}packages/${name}/src/index.ts`);
  const program = ts.createProgram(entries, {
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    target: ts.ScriptTarget.ES2022,
    noEmit: true,
    skipLibCheck: true,
  });
  const checker = program.getTypeChecker();
  const surface: Record<string, PackageSurface> = {};
  for (const [index, entry] of entries.entries()) {
    const source = program.getSourceFile(entry);
    const moduleSymbol = source && checker.getSymbolAtLocation(source);
    if (!moduleSymbol) continue;
    const values: string[] = [];
    const types: string[] = [];
    for (const symbol of checker.getExportsOfModule(moduleSymbol)) {
      const target = symbol.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(symbol) : symbol;
      if (target.flags & ts.SymbolFlags.Value) values.push(symbol.name);
      else types.push(symbol.name);
    }
    surface[`@onceflow/${packages[index]}`] = { values: values.sort(), types: types.sort() };
  }
  return surface;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const surface = publicSurface();
  if (process.argv.includes('--json')) console.log(JSON.stringify(surface, null, 2));
  else
    for (const [name, { values, types }] of Object.entries(surface)) {
      console.log(`${name} (${values.length} values, ${types.length} types)`);
      console.log(`  values: ${values.join(', ')}`);
      console.log(`  types:  ${types.join(', ')}`);
    }
}

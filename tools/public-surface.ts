// Prints the public surface of every package (values and types exported by its src/index.ts), one
// line per package, through the TypeScript compiler: `pnpm tsx tools/public-surface.ts [--json]`.
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = fileURLToPath(new URL('..', import.meta.url));
const packages = readdirSync(`${root}packages`).sort();
const entries = packages.map((name) => `${root}packages/${name}/src/index.ts`);
const program = ts.createProgram(entries, {
  module: ts.ModuleKind.ESNext,
  moduleResolution: ts.ModuleResolutionKind.Bundler,
  target: ts.ScriptTarget.ES2022,
  allowImportingTsExtensions: true,
  noEmit: true,
});
const checker = program.getTypeChecker();
const surface: Record<string, { values: string[]; types: string[] }> = {};
for (const [index, entry] of entries.entries()) {
  const source = program.getSourceFile(entry);
  if (!source) continue;
  const moduleSymbol = checker.getSymbolAtLocation(source);
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
if (process.argv.includes('--json')) console.log(JSON.stringify(surface, null, 2));
else
  for (const [name, { values, types }] of Object.entries(surface)) {
    console.log(`${name} (${values.length} values, ${types.length} types)`);
    console.log(`  values: ${values.join(', ')}`);
    console.log(`  types:  ${types.join(', ')}`);
  }

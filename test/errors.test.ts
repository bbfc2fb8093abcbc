// Keeps onceflow's closed list of error codes, its documentation and its throw sites in step: every
// declared code is raised somewhere and documented, nothing undeclared is, and every throw in the
// packages throws an OnceflowError.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { errorCodes } from '@onceflow/core';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return /\.ts$/.test(entry.name) && !/\.test\.ts$|\.test-support\.ts$/.test(entry.name) ? [path] : [];
  });
}

const packageSources = readdirSync(join(root, 'packages')).flatMap((name) =>
  sourceFiles(join(root, 'packages', name, 'src')).map((path) => ({
    path: path.slice(root.length),
    text: readFileSync(path, 'utf8'),
  })),
);
const errorsModule = 'packages/core/src/errors.ts';

/**
 * Classes thrown inside a package that are not onceflow errors, each caught where it is thrown and
 * never leaving the package, with the reason it is not an OnceflowError.
 */
const internalSentinels: Record<string, string> = {
  Released: 'http engine: unwinds a phase transaction to answer without storing; caught by the engine',
  AttemptTimedOut: 'waitForService: ends one attempt; turned into OF_UNAVAILABLE by the same function',
  WaitAborted: 'waitForService: ends the wait on stop(); turned into OF_STOPPED by the same function',
  InvalidArgumentError:
    "commander's contract for a flag it cannot parse: the CLI answers it with exit code 2",
};

describe('error codes', () => {
  it('every declared code is raised by some package source outside the list itself', () => {
    const unraised = errorCodes.filter(
      (code) => !packageSources.some(({ path, text }) => path !== errorsModule && text.includes(`'${code}'`)),
    );
    expect(unraised).toEqual([]);
  });

  it('no package source names a code that is not declared', () => {
    const declared = new Set<string>(errorCodes);
    const undeclared = packageSources.flatMap(({ path, text }) =>
      [...text.matchAll(/'(OF_[A-Z_]+)'/g)]
        .map((m) => m[1]!)
        .filter((code) => !declared.has(code))
        .map((code) => `${path}: ${code}`),
    );
    expect(undeclared).toEqual([]);
  });

  it('docs/errors.md documents exactly the declared codes, in their order', () => {
    const docs = readFileSync(join(root, 'docs/errors.md'), 'utf8');
    const documented = [...docs.matchAll(/^\| `(OF_[A-Z_]+)` \|/gm)].map((m) => m[1]);
    expect(documented).toEqual([...errorCodes]);
  });

  it('every throw in a package throws an OnceflowError (or a subclass); the few internal sentinels never leave it', () => {
    const subclasses = new Set(
      packageSources.flatMap(({ text }) =>
        [...text.matchAll(/class (\w+) extends OnceflowError/g)].map((m) => m[1]!),
      ),
    );
    const allowed = new Set(['OnceflowError', ...subclasses, ...Object.keys(internalSentinels)]);
    const offenders = packageSources.flatMap(({ path, text }) =>
      [...text.matchAll(/(?:throw|reject\()\s*new (\w+)\(/g)]
        .map((m) => m[1]!)
        .filter((name) => !allowed.has(name))
        .map((name) => `${path}: throw new ${name}`),
    );
    expect(offenders).toEqual([]);
    const errorClasses = packageSources.flatMap(({ path, text }) =>
      [...text.matchAll(/class (\w+) extends (\w*Error)\b/g)]
        .filter((m) => m[2] !== 'OnceflowError' && m[1] !== 'OnceflowError' && !(m[1]! in internalSentinels))
        .map((m) => `${path}: class ${m[1]} extends ${m[2]}`),
    );
    expect(errorClasses).toEqual([]);
  });
});

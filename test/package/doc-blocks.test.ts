// Every code block of the READMEs says how it is tested; this file checks the markers (quickly, with
// no services). The blocks themselves run in consumer.test.ts, on the installed packages.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { allDocBlocks, docProjects, repoRoot } from './doc-blocks';
import { docPlans } from './doc-plans';

const blocks = allDocBlocks();
const where = (block: { readme: string; line: number }) => `${block.readme}:${block.line}`;

describe('README code blocks', () => {
  it('every block carries a doc-test marker that names how it is tested', () => {
    const unmarked = blocks.filter(
      (block) => block.marker.kind === 'missing' || block.marker.kind === 'invalid',
    );
    expect(
      unmarked.map(
        (block) => `${where(block)}: add <!-- doc-test: … --> above the block (README, Contributing)`,
      ),
    ).toEqual([]);
  });

  it('a covered-by marker names a file that exists', () => {
    for (const block of blocks)
      if (block.marker.kind === 'covered-by')
        expect(existsSync(join(repoRoot, block.marker.path)), `${where(block)}: ${block.marker.path}`).toBe(
          true,
        );
  });

  it('file blocks are TypeScript, JavaScript or JSON, and each file of a project is written once', () => {
    const seen = new Set<string>();
    for (const block of blocks) {
      if (block.marker.kind !== 'file') continue;
      expect(['ts', 'js', 'json'], where(block)).toContain(block.lang);
      const id = `${block.marker.project}/${block.marker.path}`;
      expect(seen.has(id), `${where(block)}: ${id} appears twice`).toBe(false);
      seen.add(id);
    }
  });

  it('every doc project has a run plan, and every program in it is run by the plan', () => {
    for (const [project, files] of docProjects()) {
      const plan = docPlans[project];
      expect(plan, `no plan for doc project ${project} in test/package/doc-plans.ts`).toBeDefined();
      const used = new Set([...plan!.modules, ...plan!.programs]);
      for (const file of files.keys())
        expect(used.has(file), `${project}/${file} is neither run nor imported`).toBe(true);
    }
  });

  it('cli blocks run the installed onceflow command only', () => {
    for (const block of blocks)
      if (block.marker.kind === 'cli')
        for (const line of block.code.split('\n').filter((l) => l.trim() && !l.startsWith('#')))
          expect(line, where(block)).toMatch(/^npx onceflow( |$)/);
  });

  it("the README's bootstrap commands use the pnpm version pinned in package.json", () => {
    const pinned = (
      JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { packageManager: string }
    ).packageManager;
    const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
    const used = [...readme.matchAll(/npx (pnpm@[\d.]+)/g)].map((match) => match[1]);
    expect(used.length).toBeGreaterThan(0);
    for (const version of used) expect(version).toBe(pinned);
  });
});

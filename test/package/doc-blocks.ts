// Finds the fenced code blocks of README.md and packages/*/README.md and the `<!-- doc-test: … -->` marker
// that says how each is tested (see the README's Contributing notes).
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

/** How a block is tested. */
export type DocMarker =
  | { kind: 'file'; project: string; path: string }
  | { kind: 'cli' }
  | { kind: 'covered-by'; path: string }
  | { kind: 'missing' }
  | { kind: 'invalid'; text: string };

/** One fenced block of a README. */
export interface DocBlock {
  /** README path relative to the repository root. */
  readme: string;
  /** 1-based line of the opening fence. */
  line: number;
  lang: string;
  code: string;
  marker: DocMarker;
}

/** README.md and every packages/<name>/README.md. */
export function readmeFiles(): string[] {
  const packages = readdirSync(join(repoRoot, 'packages'))
    .map((name) => join(repoRoot, 'packages', name, 'README.md'))
    .filter((file) => existsSync(file));
  return [join(repoRoot, 'README.md'), ...packages.sort()];
}

function parseMarker(text: string): DocMarker {
  const body = text.trim();
  if (body === 'cli') return { kind: 'cli' };
  const covered = /^covered-by\s+(\S+)$/.exec(body);
  if (covered) return { kind: 'covered-by', path: covered[1]! };
  const file = /^([a-z0-9-]+)\/([\w.-]+\.(?:ts|js|mjs|json))$/.exec(body);
  if (file) return { kind: 'file', project: file[1]!, path: file[2]! };
  return { kind: 'invalid', text: body };
}

/** Every fenced block of `readme` with its marker (the `<!-- doc-test: … -->` line right above the fence). */
export function docBlocks(readme: string): DocBlock[] {
  const lines = readFileSync(readme, 'utf8').split('\n');
  const blocks: DocBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\S*)\s*$/.exec(lines[i]!);
    if (!open) continue;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !/^```\s*$/.test(lines[i]!); i++) body.push(lines[i]!);
    let previous = start - 1;
    while (previous >= 0 && lines[previous]!.trim() === '') previous--;
    const comment = previous >= 0 ? /^<!--\s*doc-test:(.*?)-->\s*$/.exec(lines[previous]!) : null;
    blocks.push({
      readme: relative(repoRoot, readme),
      line: start + 1,
      lang: open[1]!,
      code: `${body.join('\n')}\n`,
      marker: comment ? parseMarker(comment[1]!) : { kind: 'missing' },
    });
  }
  return blocks;
}

/** All blocks of all READMEs. */
export function allDocBlocks(): DocBlock[] {
  return readmeFiles().flatMap((file) => docBlocks(file));
}

/** The file blocks grouped by project: project → (file name → code). */
export function docProjects(): Map<string, Map<string, string>> {
  const projects = new Map<string, Map<string, string>>();
  for (const block of allDocBlocks()) {
    if (block.marker.kind !== 'file') continue;
    const files = projects.get(block.marker.project) ?? new Map<string, string>();
    files.set(block.marker.path, block.code);
    projects.set(block.marker.project, files);
  }
  return projects;
}

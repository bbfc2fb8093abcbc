import { describe, expect, it } from 'vitest';
import { main } from '../../packages/cli/src/index';
import { createTestDatabase, databaseUrl } from '../support';

async function run(...args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(['node', 'onceflow', ...args], {
    out: (line) => out.push(line),
    err: (line) => err.push(line),
    env: { DATABASE_URL: databaseUrl() },
  });
  return { code, out, err };
}

describe('onceflow console', () => {
  it('refuses to bind beyond loopback without a token, and refuses a short token', async () => {
    await using db = await createTestDatabase({ poolSize: 1 });
    const exposed = await run('console', '--schema', db.schema, '--host', '0.0.0.0', '--port', '0');
    expect(exposed.code).toBe(2);
    expect(exposed.err.join('\n')).toMatch(/--token/);
    const short = await run('console', '--schema', db.schema, '--token', 'short');
    expect(short.code).toBe(2);
    expect(short.err.join('\n')).toMatch(/at least 16 characters/);
  });
});

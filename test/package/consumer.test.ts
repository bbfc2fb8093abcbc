// The packages as a user gets them: every package is built and packed (pnpm pack), the tarballs are
// installed with npm into a fresh project outside the workspace, and programs run there with plain
// `node` against the real Kafka and Postgres. Also checks the tarballs with publint and
// @arethetypeswrong/cli, the types under each module setting, a bundled application, CommonJS
// `require()` and the installed `onceflow` command (through npx, SIGTERM included).
import { execFile, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { copyFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { brokers, createTopic, databaseUrl, produceRaw, uniqueName } from '../support';
import { allDocBlocks, docProjects } from './doc-blocks';
import { type DocPlanContext, type DocProcess, docPlans } from './doc-plans';

const run = promisify(execFile);
const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const fixtures = fileURLToPath(new URL('./fixtures/', import.meta.url));
const packageNames = [
  'core',
  'postgres',
  'inbox',
  'outbox',
  'kafkajs',
  'http',
  'prometheus',
  'otel-metrics',
  'opentelemetry',
  'console',
  'cli',
] as const;

/** Versions the consumer project installs beside the tarballs; kafkajs 2.2.3 proves the peer range. */
const consumerDependencies = {
  kafkajs: '2.2.3',
  '@opentelemetry/api': '1.10.0',
  'prom-client': '15.1.3',
  pg: '8.23.1',
  'drizzle-orm': '0.45.4',
  fastify: '5.12.8',
};
const consumerDevDependencies = {
  'drizzle-kit': '0.31.11',
  typescript: '5.9.3',
  '@types/node': '20.19.43',
  '@types/pg': '8.23.1',
  esbuild: '0.28.2',
};

// Children run on the Node that runs this test (the machine's, or Node 24 in CI's second pass), with
// no workspace flags: what a user's shell would have.
function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  delete env.NODE_OPTIONS;
  for (const key of Object.keys(env)) if (key.startsWith('npm_') || key.startsWith('VITEST')) delete env[key];
  env.PATH = `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ''}`;
  return env;
}

async function sh(
  command: string,
  args: string[],
  options: { cwd: string; env?: Record<string, string>; timeoutMs?: number },
): Promise<string> {
  try {
    const { stdout, stderr } = await run(command, args, {
      cwd: options.cwd,
      env: childEnv(options.env),
      timeout: options.timeoutMs ?? 300_000,
      maxBuffer: 64 * 1024 * 1024,
    });
    return `${stdout}${stderr}`;
  } catch (error) {
    const { stdout, stderr } = error as { stdout?: string; stderr?: string };
    // The tail only: a failed tsc or npm can print megabytes.
    const output = `${stdout ?? ''}${stderr ?? ''}`.slice(-6000);
    throw new Error(`${command} ${args.join(' ')} failed in ${options.cwd}:\n${output}`);
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitFor<T>(
  probe: () => T | null | undefined | false,
  what: string,
  timeoutMs = 120_000,
): Promise<T> {
  for (let waited = 0; ; waited += 100) {
    const value = probe();
    if (value) return value;
    if (waited > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('installed from packed tarballs', () => {
  let project: string;
  const project_ = () => project;
  let packs: string;
  const tarballs = new Map<string, string>();
  const database = uniqueName('onceflow_consumer');
  let projectDatabaseUrl: string;
  const admin = new pg.Pool({ connectionString: databaseUrl(), max: 1 });

  beforeAll(async () => {
    await sh('pnpm', ['run', 'build'], { cwd: repoRoot });
    project = mkdtempSync(join(tmpdir(), 'onceflow-consumer-'));
    packs = join(project, 'packs');
    mkdirSync(packs);
    for (const name of packageNames) {
      await sh('pnpm', ['pack', '--pack-destination', packs], { cwd: join(repoRoot, 'packages', name) });
      tarballs.set(name, join(packs, `onceflow-${name}-${readVersion(name)}.tgz`));
    }
    const files = Object.fromEntries(
      [...tarballs].map(([name, file]) => [`@onceflow/${name}`, `file:${file}`]),
    );
    writeFileSync(
      join(project, 'package.json'),
      JSON.stringify(
        {
          name: 'onceflow-consumer',
          private: true,
          type: 'module',
          dependencies: { ...files, ...consumerDependencies },
          devDependencies: consumerDevDependencies,
          // The packages depend on each other by version; these point those at the tarballs too.
          overrides: files,
        },
        null,
        2,
      ),
    );
    await sh('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'], {
      cwd: project,
      timeoutMs: 600_000,
    });
    for (const file of readdirSync(fixtures)) await copyFile(join(fixtures, file), join(project, file));
    await admin.query(`CREATE DATABASE "${database}"`);
    const url = new URL(databaseUrl());
    url.pathname = `/${database}`;
    projectDatabaseUrl = url.toString();
  }, 900_000);

  afterAll(async () => {
    for (const name of [database, ...extraDatabases])
      await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`).catch(() => undefined);
    await admin.end();
    // ONCEFLOW_KEEP_CONSUMER=1 keeps the project for a look after a failure.
    if (project && !process.env.ONCEFLOW_KEEP_CONSUMER) rmSync(project, { recursive: true, force: true });
    else if (project) console.log(`consumer project kept in ${project}`);
  });

  function readVersion(name: string): string {
    return (
      JSON.parse(readFileSync(join(repoRoot, 'packages', name, 'package.json'), 'utf8')) as {
        version: string;
      }
    ).version;
  }

  /** A database of its own for a program that creates tables of fixed names; dropped after the file. */
  const extraDatabases: string[] = [];
  async function freshDatabaseUrl(): Promise<string> {
    const name = uniqueName('onceflow_consumer_app');
    await admin.query(`CREATE DATABASE "${name}"`);
    extraDatabases.push(name);
    const url = new URL(databaseUrl());
    url.pathname = `/${name}`;
    return url.toString();
  }

  const services = () => ({
    DATABASE_URL: projectDatabaseUrl,
    KAFKA_BROKERS: brokers().join(','),
  });

  it('publint and @arethetypeswrong/cli find no problem in any tarball', async () => {
    for (const [name, tarball] of tarballs) {
      const lint = await sh(join(repoRoot, 'node_modules/.bin/publint'), ['run', tarball, '--strict'], {
        cwd: repoRoot,
      });
      expect(lint, name).toMatch(/All good!/);
      // esm-only: the packages are ESM; CommonJS code loads them with require() on Node >= 20.19, and
      // TypeScript's CommonJS mode accepts that under module nodenext (tested below). attw exits 1 on a problem.
      const types = await sh(join(repoRoot, 'node_modules/.bin/attw'), [tarball, '--profile', 'esm-only'], {
        cwd: repoRoot,
      });
      expect(types, name).not.toMatch(/❌|💀|🐛|🥴|🎭|❗️/);
    }
  });

  it('the tarballs hold built JavaScript, declarations, README and LICENSE, and no sources or tests', async () => {
    for (const [name, tarball] of tarballs) {
      const list = (await sh('tar', ['tzf', tarball], { cwd: project })).split('\n').filter(Boolean);
      expect(list, name).toEqual(
        expect.arrayContaining(['package/dist/index.js', 'package/dist/index.d.ts']),
      );
      expect(list, name).toEqual(expect.arrayContaining(['package/README.md', 'package/LICENSE']));
      expect(
        list.filter((file) => /\.ts$/.test(file) && !file.endsWith('.d.ts')),
        name,
      ).toEqual([]);
      expect(
        list.filter((file) => /test/.test(file)),
        name,
      ).toEqual([]);
    }
  });

  it('a plain JavaScript program runs with plain node: migrate, idempotent route, drizzle enqueue, relay, inbox', async () => {
    const output = await sh(process.execPath, ['app.mjs'], {
      cwd: project,
      env: { ...services(), DATABASE_URL: await freshDatabaseUrl(), ORDERS_TOPIC: uniqueName('consumer-js') },
    });
    console.log(`node app.mjs (Node ${process.versions.node}):\n${output}`);
    expect(output).toMatch(/migrate: schema onceflow at version \d+, \d+ applied/);
    expect(output).toMatch(/http: POST \/orders 201, retry 201 \(idempotent-replayed: true\)/);
    expect(output).toMatch(/relay \+ inbox: payments order-drizzle-1=1500, order-http-1=4200/);
    expect(output).toMatch(/errors: isOnceflowError true, code OF_INVALID_IDENTIFIER/);
    expect(output).toMatch(/^stopped$/m);
  });

  it('CommonJS code loads every package with require()', async () => {
    const output = await sh(process.execPath, ['require.cjs'], { cwd: project });
    expect(output).toMatch(/require: 7 of 7 functions, \d+ error codes, schema onceflow/);
  });

  const settings: Record<string, Record<string, unknown>> = {
    NodeNext: { module: 'nodenext', moduleResolution: 'nodenext', strict: true },
    Node16: { module: 'node16', moduleResolution: 'node16', strict: true },
    Bundler: { module: 'esnext', moduleResolution: 'bundler', strict: true },
    'strict: false': { module: 'nodenext', moduleResolution: 'nodenext', strict: false },
  };
  for (const [label, options] of Object.entries(settings)) {
    it(`the TypeScript program type-checks under ${label}, onceflow's declarations included (skipLibCheck off)`, async () => {
      const config = `tsconfig.${label.replace(/\W+/g, '-')}.json`;
      writeFileSync(
        join(project, config),
        JSON.stringify({
          compilerOptions: {
            target: 'es2022',
            types: ['node'],
            noEmit: true,
            skipLibCheck: false,
            ...options,
          },
          files: ['app.ts'],
        }),
      );
      const output = await sh(join(project, 'node_modules/.bin/tsc'), ['-p', config, '--pretty', 'false'], {
        cwd: project,
      }).catch((error: Error) => error.message);
      const errors = output.split('\n').filter((line) => /error TS/.test(line));
      // drizzle-orm's declarations for other databases do not compile without their drivers installed;
      // they are not onceflow's, so only errors in the program and in @onceflow/* count.
      const ours = errors.filter((line) => /^(app\.ts|node_modules\/@onceflow\/)/.test(line));
      console.log(
        `tsc ${label}: ${ours.length === 0 ? 'no errors' : ours.join('\n')} (other libraries: ${errors.length - ours.length})`,
      );
      expect(ours).toEqual([]);
    });
  }

  it('a CommonJS TypeScript module type-checks under module nodenext', async () => {
    writeFileSync(
      join(project, 'tsconfig.cjs.json'),
      JSON.stringify({
        compilerOptions: {
          module: 'nodenext',
          strict: true,
          types: ['node'],
          noEmit: true,
          skipLibCheck: true,
        },
        files: ['cjs-app.cts'],
      }),
    );
    const output = await sh(
      join(project, 'node_modules/.bin/tsc'),
      ['-p', 'tsconfig.cjs.json', '--pretty', 'false'],
      {
        cwd: project,
      },
    ).catch((error: Error) => error.message);
    expect(output.split('\n').filter((line) => /error TS/.test(line))).toEqual([]);
  });

  it('the TypeScript program, compiled with tsc, runs with plain node', async () => {
    writeFileSync(
      join(project, 'tsconfig.emit.json'),
      JSON.stringify({
        compilerOptions: {
          module: 'nodenext',
          target: 'es2022',
          strict: true,
          types: ['node'],
          skipLibCheck: true,
          outDir: 'out',
        },
        files: ['app.ts'],
      }),
    );
    await sh(join(project, 'node_modules/.bin/tsc'), ['-p', 'tsconfig.emit.json'], { cwd: project });
    const output = await sh(process.execPath, ['out/app.js'], {
      cwd: project,
      env: { ...services(), DATABASE_URL: await freshDatabaseUrl(), ORDERS_TOPIC: uniqueName('consumer-ts') },
    });
    expect(output).toMatch(/relay \+ inbox: payments order-drizzle-1=1500, order-http-1=4200/);
  });

  it('an application bundled with esbuild migrates from anywhere: the migrations travel inside the bundle', async () => {
    await sh(
      join(project, 'node_modules/.bin/esbuild'),
      [
        'bundle-entry.mjs',
        '--bundle',
        '--platform=node',
        '--format=esm',
        '--external:pg-native',
        // pg and its dependencies are CommonJS: an ESM bundle needs a require() for Node's built-ins.
        "--banner:js=import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);",
        '--outfile=bundle/app.mjs',
      ],
      { cwd: project },
    );
    const elsewhere = mkdtempSync(join(tmpdir(), 'onceflow-bundle-'));
    try {
      await copyFile(join(project, 'bundle/app.mjs'), join(elsewhere, 'app.mjs'));
      writeFileSync(join(elsewhere, 'package.json'), '{"type":"module"}');
      const output = await sh(process.execPath, ['app.mjs'], { cwd: elsewhere, env: services() });
      expect(output).toMatch(/bundle: schema bundled_app at version (\d+), \1 applied of \1/);
    } finally {
      rmSync(elsewhere, { recursive: true, force: true });
    }
  });

  it('the installed onceflow command: --version, --help, migrate and status through npx', async () => {
    const version = await sh('npx', ['--no-install', 'onceflow', '--version'], { cwd: project });
    expect(version.trim()).toBe(readVersion('cli'));
    expect(await sh('npx', ['--no-install', 'onceflow', '--help'], { cwd: project })).toMatch(
      /Usage: onceflow/,
    );
    const schema = uniqueName('cli');
    const migrated = await sh('npx', ['--no-install', 'onceflow', 'migrate', '--schema', schema], {
      cwd: project,
      env: services(),
    });
    expect(migrated).toMatch(new RegExp(`schema ${schema} is at version \\d+`));
    const status = await sh('npx', ['--no-install', 'onceflow', 'status', '--schema', schema, '--json'], {
      cwd: project,
      env: services(),
    });
    expect(JSON.parse(status.trim().split('\n').at(-1)!)).toMatchObject({ schema, backlog: 0, parked: 0 });
  });

  it('the installed CLI has no TypeScript loader among its production dependencies', async () => {
    const tree = await sh('npm', ['ls', '--omit=dev', '--all', '--parseable'], { cwd: project });
    expect(tree).not.toMatch(/node_modules[\\/](tsx|esbuild|typescript)$/m);
    const size = (await sh('du', ['-sk', 'node_modules'], { cwd: project })).split('\t')[0];
    console.log(`installed node_modules (with dev tools): ${size} KiB`);
    for (const [name, tarball] of tarballs)
      console.log(`tarball @onceflow/${name}: ${statSync(tarball).size} bytes`);
  });

  // Every README code block with a file marker, compiled on the installed packages and run by its plan.
  for (const [project, files] of docProjects()) {
    it(`README programs of doc project "${project}" compile (strict, NodeNext) and run as written`, async () => {
      const dir = join(project_(), 'docs', project);
      mkdirSync(dir, { recursive: true });
      for (const [file, code] of files) writeFileSync(join(dir, file), code);
      writeFileSync(
        join(dir, 'tsconfig.json'),
        JSON.stringify({
          compilerOptions: {
            module: 'nodenext',
            target: 'es2022',
            strict: true,
            types: ['node'],
            skipLibCheck: true,
            outDir: 'out',
          },
          include: ['*.ts'],
        }),
      );
      await sh(join(project_(), 'node_modules/.bin/tsc'), ['-p', 'tsconfig.json'], { cwd: dir });
      const dbName = uniqueName(`onceflow_docs_${project}`);
      await admin.query(`CREATE DATABASE "${dbName}"`);
      const url = new URL(databaseUrl());
      url.pathname = `/${dbName}`;
      const started: DocProcess[] = [];
      const ordersTopic = uniqueName(`docs-${project}`);
      // The README's consumers check at start that their dead-letter topic exists, as the README says.
      await createTopic(ordersTopic, 1);
      await createTopic(`${ordersTopic}.dlq`, 1);
      const env = {
        DATABASE_URL: url.toString(),
        KAFKA_BROKERS: brokers().join(','),
        ORDERS_TOPIC: ordersTopic,
      };
      const program = (file: string) => join('out', file.replace(/\.ts$/, '.js'));
      const ctx: DocPlanContext = {
        ordersTopic,
        run: (file, extra = {}) =>
          sh(process.execPath, [program(file)], { cwd: dir, env: { ...env, ...extra } }),
        async start(file, ready, extra = {}) {
          const child = spawn(process.execPath, [program(file)], {
            cwd: dir,
            env: childEnv({ ...env, ...extra }),
            stdio: ['ignore', 'pipe', 'pipe'],
          });
          let output = '';
          const collect = (chunk: Buffer): void => {
            output += chunk.toString();
          };
          child.stdout.on('data', collect);
          child.stderr.on('data', collect);
          const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
          const line = await waitFor(
            () =>
              output.split('\n').find((l) => ready.test(l)) ?? (child.exitCode !== null ? 'EXITED' : null),
            `${file} to print ${ready}`,
          );
          if (line === 'EXITED') throw new Error(`${file} exited before it was ready:\n${output}`);
          const handle: DocProcess = {
            line,
            output: () => output,
            async stop() {
              if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
              return exited;
            },
          };
          started.push(handle);
          return handle;
        },
        npx: (args) => sh('npx', ['--no-install', ...args], { cwd: dir, env }),
        // A client per query, closed before it returns: nothing of this test stays connected to the
        // database that is dropped (WITH FORCE) at the end.
        async query<T>(text: string, values?: unknown[]): Promise<T[]> {
          const client = new pg.Client({ connectionString: url.toString() });
          await client.connect();
          try {
            return (await client.query(text, values)).rows as T[];
          } finally {
            await client.end();
          }
        },
        async produce(topic, messages) {
          await createTopic(topic, 1);
          await produceRaw(
            topic,
            messages.map((m) => ({
              key: m.key,
              value: JSON.stringify(m.value),
              headers: { 'message-id': m.id },
            })),
          );
        },
        write: (file, text) => writeFileSync(join(dir, file), text),
        read: (path) => {
          const full = join(dir, path);
          return statSync(full).isDirectory()
            ? readdirSync(full)
                .filter((file) => file.endsWith('.sql'))
                .map((file) => readFileSync(join(full, file), 'utf8'))
                .join('\n')
            : readFileSync(full, 'utf8');
        },
        async waitFor(probe, what) {
          for (let waited = 0; !(await probe()); waited += 200) {
            if (waited > 120_000) throw new Error(`timed out waiting for ${what}`);
            await new Promise((resolve) => setTimeout(resolve, 200));
          }
        },
      };
      try {
        await docPlans[project]!.run(ctx);
      } finally {
        for (const running of started) await running.stop();
        await admin.query(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`).catch(() => undefined);
      }
    });
  }

  it('the shell blocks of the READMEs run against the installed onceflow command', async () => {
    for (const block of allDocBlocks()) {
      if (block.marker.kind !== 'cli') continue;
      for (const line of block.code.split('\n').filter((l) => l.trim() && !l.startsWith('#'))) {
        const output = await sh('bash', ['-c', line], { cwd: project, env: services() });
        // An error printed despite exit code 0; a quoted "error" is the log level's name in a --help text.
        expect(output, `${block.readme}:${block.line}: ${line}`).not.toMatch(/(?<!")\berror\b(?!")/i);
      }
    }
  });

  it("the README's install commands name packages installed here, the same for npm, pnpm and yarn", () => {
    const install = allDocBlocks().find(
      (b) => b.readme === 'README.md' && /npm install @onceflow/.test(b.code),
    )!;
    const names = (command: string) =>
      install.code
        .split('\n')
        .filter((line) => line.startsWith(`${command} `))
        .map((line) =>
          line
            .split('#')[0]!
            .trim()
            .split(/\s+/)
            .slice(2)
            .filter((word) => !word.startsWith('-')),
        );
    const [runtime, dev] = names('npm install');
    expect(names('pnpm add')[0]).toEqual(runtime);
    expect(names('yarn add')[0]).toEqual(runtime);
    const installed = JSON.parse(readFileSync(join(project, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
      devDependencies: Record<string, string>;
    };
    for (const name of [...runtime!, ...dev!])
      expect(name in installed.dependencies || name in installed.devDependencies, name).toBe(true);
  });

  // npx (npm exec) hands SIGTERM to the `sh -c` it started and exits at once; the shell dies without
  // passing it on. pnpm exec passes it to the command and exits at once too. Either way the relay, left
  // behind, must finish its work, give its lanes back and exit.
  for (const wrapper of ['npx', 'pnpm exec'] as const) {
    it(`onceflow relay started through ${wrapper} stops gracefully on SIGTERM sent to the wrapper${wrapper === 'npx' ? '' : ' (Kafka settings from --kafka-config)'}`, async () => {
      const [command, ...prefix] = wrapper === 'npx' ? ['npx', '--no-install'] : ['pnpm', 'exec'];
      const schema = uniqueName('cli_sigterm');
      const bin = join(project, 'node_modules/@onceflow/cli/bin/onceflow.js');
      await sh(process.execPath, [bin, 'migrate', '--schema', schema], { cwd: project, env: services() });
      // Through pnpm exec the Kafka settings come from a --kafka-config file alone (KAFKA_BROKERS emptied).
      const kafkaFlags =
        wrapper === 'npx' ? ['--client-id', 'sigterm-test'] : ['--kafka-config', 'kafka-settings.json'];
      writeFileSync(
        join(project, 'kafka-settings.json'),
        JSON.stringify({ brokers: brokers(), clientId: 'sigterm-test', connectionTimeout: 5000 }),
      );
      const env = wrapper === 'npx' ? services() : { ...services(), KAFKA_BROKERS: '' };
      const child = spawn(
        command!,
        [...prefix, 'onceflow', 'relay', '--schema', schema, '--metrics-interval-ms', '0', ...kafkaFlags],
        { cwd: project, env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let output = '';
      const collect = (chunk: Buffer): void => {
        output += chunk.toString();
      };
      child.stdout.on('data', collect);
      child.stderr.on('data', collect);
      const wrapperExit = new Promise<number | null>((resolve) =>
        child.once('exit', (code) => resolve(code)),
      );
      const started = await waitFor(() => /^relay (\S+) started/m.exec(output), `relay start:\n${output}`);
      // relay ids are <hostname>-<pid>-<random>
      const relayPid = Number(started[1]!.split('-').at(-2));
      try {
        child.kill('SIGTERM');
        await wrapperExit;
        await waitFor(() => !isAlive(relayPid), `relay process ${relayPid} to exit:\n${output}`);
        await waitFor(() => /relay stopped after publishing 0 events/.test(output), `final line:\n${output}`);
        expect(output).toMatch(
          wrapper === 'npx' ? /parent process \d+ exited, stopping/ : /SIGTERM received, stopping/,
        );
        const status = await sh(process.execPath, [bin, 'status', '--schema', schema, '--json'], {
          cwd: project,
          env: services(),
        });
        expect(JSON.parse(status.trim().split('\n').at(-1)!)).toMatchObject({ liveRelays: 0, ownedLanes: 0 });
      } finally {
        // A relay that did not stop is this test's own process: end it by its pid.
        if (isAlive(relayPid)) process.kill(relayPid, 'SIGKILL');
      }
    });
  }
});

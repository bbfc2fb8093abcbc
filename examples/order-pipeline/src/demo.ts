// `pnpm demo`: brings up Kafka and Postgres when they are not reachable, runs the order pipeline under
// a seeded chaos schedule, prints the verification table and exits non-zero on any FAIL.
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ensureStack, stopStack } from '../../../tools/stack/index';
import type { ConsumerName } from './config';
import { runDemo } from './run-demo';

const usage = `usage: pnpm demo [--orders N] [--chaos on|off] [--seed S] [--report path] [--keep-stack]
                 [--keep-data] [--namespace name] [--unprotected fulfilment] [--concurrency N] [--rate R]
                 [--console] [--console-port P]

  --orders N          orders to place (default 2000)
  --chaos on|off      client timeouts and duplicate requests, relay and consumer SIGKILLs, duplicate
                      records injected into Kafka (default on); the poison order is always there
  --seed S            seed of the schedule: the same seed plans the same run (default 1)
  --report path       JSON report path; the HTML chart goes next to it (default demo-report.json)
  --keep-stack        leave Kafka and Postgres running if this command started them
  --keep-data         keep the run's schemas and topics for inspection
  --namespace name    prefix of the run's schemas, topics and groups (default demo_<time>)
  --unprotected fulfilment
                      run the fulfilment consumer WITHOUT the inbox, to watch the verifier fail
  --concurrency N     orders in flight at once (default 16)
  --rate R            orders started per second, evenly spaced (default: as fast as the API answers)
  --console           serve the operator console on 127.0.0.1 (prints its URL and token) and keep it
                      up after the report until Ctrl-C
  --console-port P    its port (default 8080)`;

function integer(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isInteger(value)) throw new Error(`--${name} must be an integer (got ${text})`);
  return value;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      orders: { type: 'string' },
      chaos: { type: 'string' },
      seed: { type: 'string' },
      report: { type: 'string' },
      'keep-stack': { type: 'boolean' },
      'keep-data': { type: 'boolean' },
      namespace: { type: 'string' },
      unprotected: { type: 'string', multiple: true },
      concurrency: { type: 'string' },
      rate: { type: 'string' },
      console: { type: 'boolean' },
      'console-port': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    console.log(usage);
    return 0;
  }
  if (values.chaos !== undefined && values.chaos !== 'on' && values.chaos !== 'off')
    throw new Error(`--chaos must be on or off (got ${values.chaos})`);

  const services = await ensureStack({ log: (line) => console.log(`stack: ${line}`) });
  console.log(
    `stack: kafka ${services.kafka.brokers.join(',')} (${services.kafka.mode}), postgres (${services.postgres.mode})`,
  );
  try {
    const result = await runDemo({
      orders: integer('orders', values.orders, 2000),
      chaos: values.chaos !== 'off',
      seed: integer('seed', values.seed, 1),
      brokers: services.kafka.brokers,
      databaseUrl: services.postgres.url,
      reportPath: resolve(process.env.INIT_CWD ?? process.cwd(), values.report ?? 'demo-report.json'),
      keepData: values['keep-data'] ?? false,
      concurrency: integer('concurrency', values.concurrency, 16),
      ...(values.rate === undefined ? {} : { rate: integer('rate', values.rate, 0) }),
      unprotected: (values.unprotected ?? []) as ConsumerName[],
      ...(values.console ? { consolePort: integer('console-port', values['console-port'], 8080) } : {}),
      ...(values.namespace ? { namespace: values.namespace } : {}),
    });
    console.log('');
    console.log(result.table);
    console.log('');
    console.log(result.observations);
    console.log('');
    const failed = result.report.verification.rows.filter((r) => !r.pass);
    console.log(
      failed.length === 0
        ? `PASS: every check held (${(result.report.durationMs / 1000).toFixed(1)} s).`
        : `FAIL: ${failed.length} check(s) failed: ${failed.map((r) => r.check).join('; ')}`,
    );
    console.log(`report: ${result.reportPath}\nchart:  ${result.htmlPath}`);
    return failed.length === 0 ? 0 : 1;
  } finally {
    const startedHere = services.kafka.startedHere || services.postgres.startedHere;
    if (startedHere && !values['keep-stack']) {
      console.log('stack: stopping what this run started (--keep-stack to keep it)');
      await stopStack((line) => console.log(`stack: ${line}`));
    }
  }
}

main().then(
  (code) => process.exit(code),
  (error: Error) => {
    console.error(error.message);
    process.exit(2);
  },
);

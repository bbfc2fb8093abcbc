// `pnpm stack:up | stack:down | stack:status`: the local Kafka and Postgres that the demo and the tests use.
import { ensureStack, type PostgresMode, stackStatus, stopStack } from './stack/index';

const [command, ...flags] = process.argv.slice(2);
const forced = flags.find((f) => f.startsWith('--postgres='))?.slice('--postgres='.length) as
  | PostgresMode
  | undefined;

try {
  if (command === 'up') {
    const services = await ensureStack(forced ? { postgres: forced } : {});
    console.log(`kafka    ${services.kafka.brokers.join(',')} (${services.kafka.mode})`);
    console.log(
      `postgres ${services.postgres.url.replace(/:[^:@/]+@/, ':***@')} (${services.postgres.mode})`,
    );
    console.log(
      `export KAFKA_BROKERS=${services.kafka.brokers.join(',')} DATABASE_URL=${services.postgres.url}`,
    );
  } else if (command === 'down') {
    await stopStack();
  } else if (command === 'status') {
    for (const line of await stackStatus()) console.log(line);
  } else {
    console.error('usage: tsx tools/stack.ts up [--postgres=embedded] | down | status');
    process.exitCode = 2;
  }
} catch (error) {
  console.error((error as Error).message);
  process.exitCode = 1;
}

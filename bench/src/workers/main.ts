// Entry of a bench worker process: `tsx workers/main.ts <kind>` with BENCH_PARAMS in the environment.
import { inboxConsumer, naiveConsumer, peerInboxConsumer, rawConsumer } from './consumers';
import { httpServer } from './http-server';
import { naiveRelay, onceflowRelay, peerRelay } from './relays';

const kinds: Record<string, () => Promise<void>> = {
  'raw-consumer': rawConsumer,
  'naive-consumer': naiveConsumer,
  'inbox-consumer': inboxConsumer,
  'peer-inbox-consumer': peerInboxConsumer,
  'onceflow-relay': onceflowRelay,
  'naive-relay': naiveRelay,
  'peer-relay': peerRelay,
  'http-server': httpServer,
};

const kind = process.argv[2] ?? '';
const run = kinds[kind];
if (!run) {
  console.error(`unknown bench worker ${JSON.stringify(kind)}; one of ${Object.keys(kinds).join(', ')}`);
  process.exit(2);
}
run().catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
  process.exit(1);
});

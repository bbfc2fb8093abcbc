/** The scenario groups `--only` accepts. */
export const benchGroups = [
  'inbox',
  'hot-rows',
  'relay',
  'http',
  'peer',
  'scaling',
  'recovery',
  'pipeline',
  'tracing',
  'console',
] as const;
/** One scenario group. */
export type BenchGroup = (typeof benchGroups)[number];

/** Sizes and durations of one run; `--quick` picks the small set. */
export interface BenchConfig {
  mode: 'quick' | 'full';
  groups: BenchGroup[];
  /** Messages pre-produced per topic for the consumer scenarios. */
  messages: number;
  /** Size of each message value and outbox event value, in bytes. */
  valueBytes: number;
  /** Partitions of every bench topic. */
  partitions: number;
  /** Distinct keys of the produced messages and outbox events. */
  keys: number;
  /** Messages of the hot-rows scenario (each one update of a row, so fewer than `messages`). */
  hotRowsMessages: number;
  /** Most messages the one-transaction-per-message baselines process before they stop (they are slow). */
  naiveMessages: number;
  /** Outbox backlog drained by one relay. */
  relayEvents: number;
  /** Most events the one-at-a-time relay loop publishes before it stops. */
  relayNaiveEvents: number;
  /** Length of the steady-rate latency run, in seconds (measured, after the warm-up). */
  latencySeconds: number;
  /**
   * Seconds of the same offered load before the measured window; their events are reported apart
   * (`relay_latency_warmup_p99_ms`), since a just-started Node process runs its hot paths unoptimised.
   */
  latencyWarmupSeconds: number;
  /** Offered loads of the relay latency runs, events per second (one run, one fresh relay each). */
  latencyRates: number[];
  /** Length of each HTTP load run, in seconds. */
  httpSeconds: number;
  /** Concurrent HTTP connections of the load generator. */
  httpConnections: number;
  /** Messages / events given to the peer library (its throughput is far lower, so it gets fewer). */
  peerMessages: number;
  /** Orders the pipeline scenario places. */
  pipelineOrders: number;
  /** Orders per second the pipeline scenario offers (a rate its consumers keep up with). */
  pipelineRate: number;
  /**
   * Also run the scenarios that start a server of their own (the broker restart on a private broker,
   * the peer's logical-replication mode on a private Postgres); `--quick` leaves them out.
   */
  privateServers: boolean;
  /** Published-ledger rows, and inbox rows per consumer, behind the console's lookup. */
  lookupHistoryRows: number;
  /** Events waiting in the outbox during the console's lookup. */
  lookupBacklogRows: number;
  /** Also run the Postgres-bound scenarios with `synchronous_commit = off` (per session). */
  syncOff: boolean;
  /** kafkajs partitionsConsumedConcurrently of every consumer, onceflow's and the baselines'. */
  consumerConcurrency: number;
  /**
   * Runs of each side of an overhead comparison (with and without metrics, tracing, the published
   * ledger), alternated: more rounds let a drift of the shared machine weigh on both sides alike.
   */
  overheadRounds: number;
}

const full: Omit<BenchConfig, 'groups'> = {
  mode: 'full',
  messages: 60_000,
  valueBytes: 1024,
  partitions: 6,
  keys: 1000,
  naiveMessages: 6_000,
  hotRowsMessages: 20_000,
  relayEvents: 60_000,
  relayNaiveEvents: 3_000,
  latencySeconds: 15,
  latencyWarmupSeconds: 5,
  latencyRates: [1_000, 5_000, 10_000],
  httpSeconds: 10,
  httpConnections: 16,
  peerMessages: 3_000,
  pipelineOrders: 3_000,
  pipelineRate: 100,
  privateServers: true,
  lookupHistoryRows: 1_000_000,
  lookupBacklogRows: 10_000,
  syncOff: true,
  consumerConcurrency: 3,
  overheadRounds: 5,
};

const quick: Omit<BenchConfig, 'groups'> = {
  ...full,
  mode: 'quick',
  messages: 10_000,
  naiveMessages: 1_500,
  hotRowsMessages: 3_000,
  relayEvents: 10_000,
  relayNaiveEvents: 800,
  latencySeconds: 3,
  latencyWarmupSeconds: 1,
  httpSeconds: 3,
  peerMessages: 600,
  pipelineOrders: 300,
  pipelineRate: 50,
  privateServers: false,
  syncOff: false,
  overheadRounds: 1,
  lookupHistoryRows: 50_000,
  lookupBacklogRows: 2_000,
};

/** Parses `pnpm bench` flags: `--quick`, `--only <group>` (one of {@link benchGroups}; repeatable or comma-separated). */
export function parseArgs(argv: readonly string[]): BenchConfig {
  let quickRun = false;
  const groups: BenchGroup[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') continue;
    if (arg === '--quick') quickRun = true;
    else if (arg === '--only' || arg.startsWith('--only=')) {
      const value = arg === '--only' ? argv[++i] : arg.slice('--only='.length);
      for (const name of (value ?? '').split(',')) {
        if (!(benchGroups as readonly string[]).includes(name))
          throw new Error(`--only takes one of ${benchGroups.join(', ')} (got ${JSON.stringify(name)})`);
        groups.push(name as BenchGroup);
      }
    } else
      throw new Error(`unknown flag ${arg}; usage: pnpm bench [--quick] [--only ${benchGroups.join('|')}]`);
  }
  return { ...(quickRun ? quick : full), groups: groups.length > 0 ? groups : [...benchGroups] };
}

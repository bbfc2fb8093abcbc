import type { Admin, Kafka } from 'kafkajs';
import type pg from 'pg';
import type { BenchConfig } from './config';
import type { PeerObjects } from './services';
import type { Services } from './shared';

/** Everything a scenario group needs, and where it records its figures. */
export interface BenchContext {
  config: BenchConfig;
  services: Services;
  /** Unique per run: prefixes topics, groups and ids. */
  runId: string;
  /** The run's schema (onceflow's tables and the bench's). */
  schema: string;
  peer: PeerObjects;
  kafka: Kafka;
  admin: Admin;
  /** Harness pool (server's synchronous_commit), for setup and checks. */
  pool: pg.Pool;
  /** Topics created by this run, deleted at the end. */
  topics: string[];
  /** Figures by JSON field name; null where a figure could not be measured (see notes). */
  results: Record<string, number | null>;
  /** Explanations that belong next to the figures (peer mode, missing figures, checks that failed). */
  notes: string[];
  log(line: string): void;
}

/** Rounds a rate or a ratio for the results file. */
export function round(value: number, digits = 0): number {
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}

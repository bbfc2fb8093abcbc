/**
 * Serialises one consumer's transactions for a while after one of them lost a race (a deadlock,
 * 40P01, or a serialization failure, 40001). Partitions processed concurrently whose handlers update
 * the same few rows in different orders deadlock again and again; Postgres finds each deadlock only
 * after `deadlock_timeout` (1 s by default), so a storm of them costs far more than running the
 * transactions one at a time, which they mostly were anyway while they waited for each other's row
 * locks. The first lost race starts a quiet period of {@link initialQuietMs} in which the
 * transactions of this process run one at a time; a lost race soon after one ended doubles the next
 * (up to {@link maxQuietMs}), a long calm resets it. Nothing changes for a consumer that never loses
 * a race, and no guarantee depends on it: it only decides when a transaction starts.
 */
export class TransactionGate {
  /** Transactions run one at a time until this instant (ms since the epoch). */
  private serialUntil = 0;
  private quietMs = initialQuietMs;
  /** The tail of the queue of serialised transactions. */
  private tail: Promise<void> = Promise.resolve();
  /** Transactions that started while transactions ran concurrently and have not ended yet. */
  private concurrent = 0;
  private drained: Array<() => void> = [];

  constructor(private readonly now: () => number = Date.now) {}

  /** True while transactions run one at a time. */
  get serial(): boolean {
    return this.now() < this.serialUntil;
  }

  /**
   * Waits for this transaction's turn and returns the function that ends it: at once while
   * transactions run concurrently; while they run one at a time, after the ones queued before it
   * and after every transaction that started concurrently has ended.
   */
  async enter(): Promise<() => void> {
    if (!this.serial) {
      this.concurrent++;
      return once(() => {
        this.concurrent--;
        if (this.concurrent === 0) for (const resolve of this.drained.splice(0)) resolve();
      });
    }
    let release: () => void = noop;
    const turn = new Promise<void>((resolve) => {
      release = resolve;
    });
    const before = this.tail;
    this.tail = before.then(() => turn);
    await before;
    if (this.concurrent > 0) await new Promise<void>((resolve) => this.drained.push(resolve));
    return once(release);
  }

  /** Notes a transaction that lost a race: starts (or lengthens) a period of one-at-a-time transactions. */
  lostRace(): void {
    const now = this.now();
    if (now < this.serialUntil) return;
    const sinceEnd = now - this.serialUntil;
    if (this.serialUntil > 0 && sinceEnd < this.quietMs)
      this.quietMs = Math.min(maxQuietMs, this.quietMs * 2);
    else if (sinceEnd > calmResetMs) this.quietMs = initialQuietMs;
    this.serialUntil = now + this.quietMs;
  }
}

function once(fn: () => void): () => void {
  let done = false;
  return () => {
    if (done) return;
    done = true;
    fn();
  };
}

function noop(): void {}

/** First period of one-at-a-time transactions after a lost race, in milliseconds. */
export const initialQuietMs = 10_000;
/** Longest period of one-at-a-time transactions, in milliseconds. */
export const maxQuietMs = 160_000;
/** Time without a lost race after which the period starts again from {@link initialQuietMs}, in milliseconds. */
const calmResetMs = 600_000;

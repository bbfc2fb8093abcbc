/** What {@link InFlightLimiter.enter} decided. */
export type Admission = 'admitted' | 'duplicate' | 'flood' | 'full';

/**
 * Bounds the work one process takes on before any row is claimed: requests in flight in total,
 * and distinct keys in flight per scope (a client inventing a new key per request cannot occupy
 * every connection). A second request for a key already in flight here is told `duplicate`; it may
 * wait for that key to leave ({@link settled}) instead of claiming the key itself.
 */
export class InFlightLimiter {
  private total = 0;
  /** Keys in flight by scope, each with the callbacks of requests waiting for it to leave. */
  private readonly scopes = new Map<string, Map<string, Array<() => void>>>();

  constructor(
    private readonly maxInFlight: number,
    private readonly maxKeysPerScope: number,
  ) {}

  enter(scope: string, key: string): Admission {
    const keys = this.scopes.get(scope);
    if (keys?.has(key)) return 'duplicate';
    if (this.total >= this.maxInFlight) return 'full';
    if ((keys?.size ?? 0) >= this.maxKeysPerScope) return 'flood';
    this.total++;
    if (keys) keys.set(key, []);
    else this.scopes.set(scope, new Map([[key, []]]));
    return 'admitted';
  }

  leave(scope: string, key: string): void {
    const keys = this.scopes.get(scope);
    const waiters = keys?.get(key);
    if (!keys || !waiters) return;
    keys.delete(key);
    this.total--;
    if (keys.size === 0) this.scopes.delete(scope);
    for (const wake of [...waiters]) wake();
  }

  /**
   * Resolves once `key` is no longer in flight here (at once when it is not), after `timeoutMs` at
   * the latest, or when `signal` aborts; resolves to true only in the first case.
   */
  settled(scope: string, key: string, timeoutMs: number, signal: AbortSignal): Promise<boolean> {
    const waiters = this.scopes.get(scope)?.get(key);
    if (!waiters) return Promise.resolve(true);
    if (signal.aborted || timeoutMs <= 0) return Promise.resolve(false);
    return new Promise((resolve) => {
      const finish = (left: boolean): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        const index = waiters.indexOf(onLeave);
        if (index >= 0) waiters.splice(index, 1);
        resolve(left);
      };
      const onLeave = (): void => finish(true);
      const onAbort = (): void => finish(false);
      const timer = setTimeout(() => finish(false), timeoutMs);
      waiters.push(onLeave);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Requests in flight right now. */
  get size(): number {
    return this.total;
  }
}

/** What {@link InFlightLimiter.enter} decided. */
export type Admission = 'admitted' | 'duplicate' | 'flood' | 'full';

/**
 * Bounds the work one process takes on before any row is claimed: requests in flight in total,
 * and distinct keys in flight per scope (a client inventing a new key per request cannot occupy
 * every connection). A second request for a key already in flight here is answered 409 at once.
 */
export class InFlightLimiter {
  private total = 0;
  private readonly scopes = new Map<string, Set<string>>();

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
    if (keys) keys.add(key);
    else this.scopes.set(scope, new Set([key]));
    return 'admitted';
  }

  leave(scope: string, key: string): void {
    const keys = this.scopes.get(scope);
    if (!keys?.delete(key)) return;
    this.total--;
    if (keys.size === 0) this.scopes.delete(scope);
  }

  /** Requests in flight right now. */
  get size(): number {
    return this.total;
  }
}

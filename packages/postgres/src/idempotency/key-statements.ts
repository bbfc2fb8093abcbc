// The statements that write idempotency keys: prepared once per pooled connection and sent as one
// simple-protocol round trip together with COMMIT, so a keyed request costs no extra round trip.
import { createHash } from 'node:crypto';
import { OnceflowError } from '@onceflow/core';
import type { PoolClient } from 'pg';
import { createTransactionContext } from '../context';
import { quoteIdentifier } from '../identifier';
import type {
  IdempotencyKeyRecord,
  IdempotencyKeyTransaction,
  KeyClaim,
  NewIdempotencyKey,
  StoredRequest,
  StoredResponse,
} from './key-store';

/** A row of the `idempotency_claim` function of migration 0003. */
export interface ClaimRow {
  claim: 'busy' | 'absent' | 'found';
  request_id: string;
  fingerprint: Buffer;
  route: string;
  state: 'in_progress' | 'completed';
  recovery_point: string;
  phase_data: unknown;
  request: StoredRequest | null;
  request_body: Buffer | null;
  response_status: number | null;
  response_headers: Record<string, string> | null;
  response_body: Buffer | null;
  lease_token: string | null;
  lease_remaining_ms: number | null;
}

/** The claim a row of `idempotency_claim` describes. */
export function toClaim(scope: string, key: string, row: ClaimRow | undefined): KeyClaim {
  if (row === undefined)
    throw new OnceflowError(
      'OF_SCHEMA_MISMATCH',
      'idempotency_claim returned no row: the schema does not match this version of onceflow; run onceflow migrate',
    );
  if (row.claim !== 'found') return { status: row.claim };
  const leaseRemainingMs = Math.max(0, Math.ceil(Number(row.lease_remaining_ms ?? 0)));
  const record: IdempotencyKeyRecord = {
    requestId: row.request_id,
    scope,
    key,
    fingerprint: row.fingerprint,
    route: row.route,
    state: row.state,
    recoveryPoint: row.recovery_point,
    phaseData: row.phase_data,
    request: row.request,
    requestBody: row.request_body,
    response:
      row.response_status === null
        ? null
        : {
            status: row.response_status,
            headers: row.response_headers ?? {},
            body: row.response_body ?? Buffer.alloc(0),
          },
    leaseToken: row.lease_token,
    leaseLive: leaseRemainingMs > 0,
    leaseRemainingMs,
  };
  return { status: 'found', record };
}

/**
 * The key statements each pooled connection has prepared; a connection keeps them for the life of
 * its session. Shared by every store of this process, since stores may share a pool.
 */
const preparedOn = new WeakMap<PoolClient, Set<string>>();

/** A value written into SQL text as a literal. */
type Literal = string | number | boolean | Buffer | null;

/** A statement that writes a key, prepared per connection. */
interface KeyStatement {
  name: string;
  /** Parameter types, in order. */
  types: string;
  text: string;
}

/** A key write: a prepared statement and the values to run it with. */
interface KeyWrite {
  statement: KeyStatement;
  values: Literal[];
}

// jsonb values travel as their JSON text, which the statement's jsonb parameter parses.
function jsonParam(value: unknown): string | null {
  return value === undefined || value === null ? null : JSON.stringify(value);
}

/**
 * Renders a value as a SQL literal, for the statements that travel in one simple-protocol round
 * trip with BEGIN or COMMIT (that protocol takes no parameters). Strings go through pg's own
 * escaping, bytes as hex digits, numbers only when finite.
 */
export function literal(client: PoolClient, value: Literal): string {
  if (value === null) return 'NULL';
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'number') {
    if (!Number.isFinite(value))
      throw new OnceflowError('OF_INVALID_ARGUMENT', `idempotency key store: not a finite number: ${value}`);
    return String(value);
  }
  if (Buffer.isBuffer(value)) return `decode('${value.toString('hex')}', 'hex')`;
  // The protocol ends a query at NUL; refuse rather than send a cut statement.
  if (value.includes('\u0000'))
    throw new OnceflowError(
      'OF_INVALID_ARGUMENT',
      'idempotency key store: a NUL character cannot be stored in text (check the scope function)',
    );
  return client.escapeLiteral(value);
}

/** The key statements of one schema, and how to prepare and bind them. */
export interface KeyStatements {
  /** Prepares the key writes on a connection that has not got them yet, outside any transaction. */
  ensurePrepared(client: PoolClient): Promise<void>;
  /** Forgets what `client` prepared, after its session was reset (SQLSTATE 26000). */
  forget(client: PoolClient): void;
  /** The key writes of one transaction; `commitStatement()` is what to send to end it. */
  bind(
    client: PoolClient,
    scope: string,
    key: string,
  ): IdempotencyKeyTransaction & { commitStatement(): string };
}

/** The key statements of `schema` (validated). */
export function createKeyStatements(schema: string): KeyStatements {
  const table = `${quoteIdentifier(schema)}.idempotency_keys`;
  // The key writes are prepared once per connection (SQL PREPARE, which outlives a rollback), so
  // the round trip that carries COMMIT only binds values to an already planned statement.
  const statementPrefix = `onceflow_idem_${createHash('sha1').update(schema).digest('hex').slice(0, 12)}`;
  const statements = {
    insert: {
      name: `${statementPrefix}_insert`,
      types:
        'uuid, text, text, bytea, text, text, text, jsonb, jsonb, bytea, integer, jsonb, bytea, uuid, double precision, double precision',
      text: `INSERT INTO ${table} (request_id, scope, key, fingerprint, route, state, recovery_point, phase_data,
                        request, request_body, response_status, response_headers, response_body, lease_token,
                        locked_until, expires_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,
             CASE WHEN $14 IS NULL THEN NULL ELSE now() + make_interval(secs => $15 / 1000) END,
             now() + make_interval(secs => $16 / 1000))`,
    },
    advance: {
      name: `${statementPrefix}_advance`,
      types: 'text, text, text, jsonb, uuid, double precision',
      text: `UPDATE ${table}
        SET recovery_point = $3, phase_data = $4, lease_token = $5,
            locked_until = now() + make_interval(secs => $6 / 1000), updated_at = now()
      WHERE scope = $1 AND key = $2`,
    },
    complete: {
      name: `${statementPrefix}_complete`,
      types: 'text, text, integer, jsonb, bytea',
      text: `UPDATE ${table}
        SET state = 'completed', response_status = $3, response_headers = $4, response_body = $5,
            lease_token = NULL, locked_until = NULL, request_body = NULL, updated_at = now()
      WHERE scope = $1 AND key = $2`,
    },
  } satisfies Record<string, KeyStatement>;

  /**
   * What a session holds is read from the server the first time this process sees the connection,
   * so several stores sharing a pool never prepare a name twice.
   */
  async function ensurePrepared(client: PoolClient): Promise<void> {
    let names = preparedOn.get(client);
    if (names === undefined) {
      const { rows } = await client.query<{ name: string }>('SELECT name FROM pg_prepared_statements');
      names = new Set(rows.map((row) => row.name));
      preparedOn.set(client, names);
    }
    const missing = Object.values(statements).filter((statement) => !names.has(statement.name));
    if (missing.length === 0) return;
    await client.query(
      missing.map(({ name, types, text }) => `PREPARE ${name} (${types}) AS ${text}`).join('; '),
    );
    for (const { name } of missing) names.add(name);
  }

  function bind(
    client: PoolClient,
    scope: string,
    key: string,
  ): IdempotencyKeyTransaction & { commitStatement(): string } {
    let write: KeyWrite | undefined;
    function stage(next: KeyWrite): void {
      if (write !== undefined)
        throw new OnceflowError(
          'OF_INVALID_ARGUMENT',
          'idempotency key store: one key write per transaction (insert, advance or complete)',
        );
      write = next;
    }
    return {
      context: createTransactionContext(client, { schema }),
      insert(row: NewIdempotencyKey): void {
        const done = row.response !== null;
        stage({
          statement: statements.insert,
          values: [
            row.requestId,
            row.scope,
            row.key,
            row.fingerprint,
            row.route,
            done ? 'completed' : 'in_progress',
            row.recoveryPoint,
            jsonParam(row.phaseData),
            jsonParam(row.request),
            row.requestBody,
            row.response?.status ?? null,
            jsonParam(row.response?.headers),
            row.response?.body ?? null,
            done ? null : row.leaseToken,
            row.leaseMs,
            row.retentionMs,
          ],
        });
      },
      advance(next): void {
        stage({
          statement: statements.advance,
          values: [scope, key, next.recoveryPoint, jsonParam(next.phaseData), next.leaseToken, next.leaseMs],
        });
      },
      complete(response: StoredResponse): void {
        stage({
          statement: statements.complete,
          values: [scope, key, response.status, jsonParam(response.headers), response.body],
        });
      },
      commitStatement(): string {
        return write === undefined
          ? 'COMMIT'
          : `EXECUTE ${write.statement.name}(${write.values.map((value) => literal(client, value)).join(', ')}); COMMIT`;
      },
    };
  }

  return { ensurePrepared, forget: (client) => preparedOn.delete(client), bind };
}

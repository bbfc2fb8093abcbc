export {
  createIdempotencyCompleter,
  defaultIdempotencyCompleterOptions,
  type IdempotencyCompleter,
  type IdempotencyCompleterOptions,
} from './completer';
export {
  type Admission,
  createIdempotencyEngine,
  type IdempotencyEngine,
  type ResumeOutcome,
} from './engine';
export { type FastifyIdempotencyOptions, idempotency, idempotent } from './fastify';
export { type FingerprintInput, requestFingerprint } from './fingerprint';
export {
  idempotencyKeyHeader,
  type KeyHeaderResult,
  parseIdempotencyKey,
  replayedHeader,
} from './key-header';
export { idempotentListener, type NodeIdempotentRouteOptions } from './node';
export {
  defaultIdempotencyEngineOptions,
  type IdempotencyEngineOptions,
  type IdempotencyTestHooks,
  type PhaseCommitInfo,
  type ResolvedEngineOptions,
} from './options';
export {
  type ErrorFormat,
  errorResponse,
  type ProblemKind,
  problemResponse,
  problemTypes,
  problemTypeUri,
} from './problem';
export {
  createIdempotencyReaper,
  defaultIdempotencyReaperOptions,
  type IdempotencyReaper,
  type IdempotencyReaperOptions,
} from './reaper';
export { type HttpResult, type IdempotentResponse, serializeResponse } from './response';
export {
  defineRoute,
  type IdempotentHandler,
  type IdempotentPhase,
  type IdempotentPhases,
  type IdempotentRequest,
  type IdempotentRouteOptions,
  type PhaseContext,
  type RecoveryPoint,
  type RouteSpec,
  recoveryPoint,
  startedRecoveryPoint,
} from './route';

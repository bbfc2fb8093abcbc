export type { ConsoleAdmin } from './admin-seam';
export { createConsole } from './console';
export {
  type ConsoleAuditEntry,
  type ConsoleKafkaOffsets,
  type ConsoleOptions,
  defaultConsoleOptions,
} from './options';
export {
  defaultStartConsoleOptions,
  type StartConsoleOptions,
  type StartedConsole,
  startConsole,
} from './start';

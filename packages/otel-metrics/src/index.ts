export {
  type OnceflowOtelMetrics,
  type OnceflowOtelMetricsOptions,
  onceflowOtelInstruments,
  registerOnceflowOtelMetrics,
} from './register';

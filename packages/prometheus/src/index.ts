export {
  defaultOnceflowMetricsOptions,
  type OnceflowMetricName,
  type OnceflowMetrics,
  type OnceflowMetricsOptions,
  onceflowMetricDefinitions,
  registerOnceflowMetrics,
} from './register';

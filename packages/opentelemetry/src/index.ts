export {
  defaultOnceflowInstrumentationOptions,
  instrumentationScope,
  instrumentOnceflow,
  type OnceflowInstrumentation,
  type OnceflowInstrumentationOptions,
} from './instrument';

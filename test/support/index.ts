export {
  createTopic,
  produceRaw,
  type RawMessage,
  type RawRecord,
  type ReadTopicOptions,
  readTopic,
} from './kafka';
export {
  type PrivateKafkaBroker,
  type PrivateKafkaBrokerOptions,
  startPrivateKafka,
} from './private-kafka';
export {
  type PostgresStopMode,
  type PrivatePostgres,
  type PrivatePostgresOptions,
  startPrivatePostgres,
} from './private-postgres';
export { type ChildHandle, spawnTs } from './processes';
export {
  brokers,
  createTestDatabase,
  databaseUrl,
  serviceEnv,
  type TestDatabase,
  testKafka,
  uniqueName,
} from './services';

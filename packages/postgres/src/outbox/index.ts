export { encodeOutboxEvent, enqueue, laneOf, outboxLaneCount } from './enqueue';

// The payments consumer process (an onceflow inbox consumer); see ../handlers.ts for what it does.
import { runInboxConsumer } from './consumer';

await runInboxConsumer('payments');

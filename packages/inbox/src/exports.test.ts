import { expect, it } from 'vitest';
import * as inbox from './index';

it('the public surface of @onceflow/inbox is exactly the documented exports', () => {
  expect(Object.keys(inbox).sort()).toEqual([
    'createInboxEngine',
    'deadLetterEvent',
    'deadLetterHeaders',
    'defaultInboxOptions',
    'inboxModes',
    'positionAheadPolicies',
    'resolveInboxOptions',
  ]);
});

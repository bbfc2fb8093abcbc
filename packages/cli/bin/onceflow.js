#!/usr/bin/env node
// The package's own entry, by name: the built dist/ when installed, the TypeScript sources in the
// onceflow workspace (run there with `node --conditions=@onceflow/source --import tsx`).
import { main } from '@onceflow/cli';

process.exitCode = await main(process.argv);

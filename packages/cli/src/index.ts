export type { CliIo } from './io';
export { createCli, main } from './main';

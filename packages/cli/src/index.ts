export { type CliIo, createCli, main } from './main';

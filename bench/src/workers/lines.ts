/** Line prefix a worker prints once it is set up and measuring (servers: listening). */
export const readyPrefix = 'BENCH_READY ';
/** Line prefix of a worker's final JSON result. */
export const resultPrefix = 'BENCH_RESULT ';

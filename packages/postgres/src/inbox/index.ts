// Public surface of this store; re-exported from ../index.ts.
export {};

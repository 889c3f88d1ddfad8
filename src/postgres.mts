// ESM entry of `exclusive-process/postgres`: re-exports the CommonJS build,
// so `import` and `require` share one module instance, never two copies.
import api from './postgres.js';

export const { postgres, advisoryKey, LockLostError } = api;
export type * from './postgres.js';

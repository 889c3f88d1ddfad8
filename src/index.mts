// ESM entry: re-exports the CommonJS build, so `import` and `require` share
// one module instance (one in-process lock registry), never two copies.
export * from './index.js';

// ESM entry of `exclusive-process/redis`: re-exports the CommonJS build,
// so `import` and `require` share one module instance, never two copies.
export * from './redis.js';

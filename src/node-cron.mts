// ESM entry of `exclusive-process/node-cron`: re-exports the CommonJS build,
// so `import` and `require` share one module instance, never two copies.
export * from './node-cron.js';

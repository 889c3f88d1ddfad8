// Entry point `exclusive-process/node-cron`: re-exports only.
export { coordinator, type CoordinatorOptions, type RunCoordinator } from './api/coordinator.js';

// Run two or more copies at once: each fire of a job runs in one of them.
//
//   npm run build && npm start & npm start
//
// EXAMPLE_JOBS: comma-separated jobs to schedule (reports, mail; default both).
// EXAMPLE_RUN_MS: stop after this many milliseconds (default: run until SIGINT/SIGTERM).
import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { AppModule } from './app.module.js';

const jobs = process.env.EXAMPLE_JOBS?.split(',');
const app = await NestFactory.createApplicationContext(AppModule.register(jobs), { logger: ['error', 'warn'] });
app.enableShutdownHooks();
console.log(`app: ready, pid ${process.pid}`);
if (process.env.EXAMPLE_RUN_MS !== undefined) {
  setTimeout(() => {
    void app.close().then(() => console.log('app: closed'));
  }, Number(process.env.EXAMPLE_RUN_MS));
}

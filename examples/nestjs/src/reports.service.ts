import { Injectable } from '@nestjs/common';
import { Cron, CronExpression } from '@nestjs/schedule';
import { Exclusive } from 'exclusive-process';
import { JobLog } from './job-log.js';

/** How long a run takes (ms): EXAMPLE_WORK_MS, else 300. */
const WORK_MS = Number(process.env.EXAMPLE_WORK_MS ?? 300);
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Every second, on every replica; `@Exclusive({ skip: true })` lets one
 * replica run it, and the others skip that fire quietly (no error, nothing
 * logged unless NODE_DEBUG=exclusive-process). The lock's default name is
 * this file's plus `ReportsService.refresh`, the same on every replica.
 */
@Injectable()
export class ReportsService {
  constructor(private readonly log: JobLog) {}

  @Cron(CronExpression.EVERY_SECOND)
  @Exclusive({ skip: true })
  async refresh(): Promise<void> {
    this.log.write('enter', 'ReportsService.refresh');
    await sleep(WORK_MS);
    this.log.write('exit', 'ReportsService.refresh');
  }
}

/** The same job with the decorators the other way round: either order works. */
@Injectable()
export class MailService {
  constructor(private readonly log: JobLog) {}

  @Exclusive({ skip: true })
  @Cron(CronExpression.EVERY_SECOND)
  async sendQueued(): Promise<void> {
    this.log.write('enter', 'MailService.sendQueued');
    await sleep(WORK_MS);
    this.log.write('exit', 'MailService.sendQueued');
  }
}

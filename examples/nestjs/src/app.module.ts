import { Module, type DynamicModule, type Type } from '@nestjs/common';
import { ScheduleModule } from '@nestjs/schedule';
import { JobLog } from './job-log.js';
import { MailService, ReportsService } from './reports.service.js';

/** The job services by name, for EXAMPLE_JOBS (default: both). */
export const JOBS: Readonly<Record<string, Type>> = { reports: ReportsService, mail: MailService };

@Module({})
export class AppModule {
  /** The app with the job services named in `jobs`. */
  static register(jobs: readonly string[] = Object.keys(JOBS)): DynamicModule {
    const services = jobs.map((job) => {
      const service = JOBS[job];
      if (service === undefined) throw new Error(`unknown job '${job}' (known: ${Object.keys(JOBS).join(', ')})`);
      return service;
    });
    return { module: AppModule, imports: [ScheduleModule.forRoot()], providers: [JobLog, ...services], exports: [JobLog] };
  }
}

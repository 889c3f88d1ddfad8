import { Injectable } from '@nestjs/common';

/**
 * The dependency the scheduled jobs get injected (by type: this needs
 * `emitDecoratorMetadata`). It prints one line per event, with the time in
 * milliseconds (fractions included) so that lines of two processes sort.
 */
@Injectable()
export class JobLog {
  write(event: 'enter' | 'exit', job: string): void {
    const now = (performance.timeOrigin + performance.now()).toFixed(3);
    process.stdout.write(`job-log: ${event} ${job} pid=${process.pid} at=${now}\n`);
  }
}

// Exclusive service methods: a report that must not run twice at once (a
// second call fails fast), and a migration that later callers wait for.
//
//   npx tsx examples/service.ts
import { CannotAcquireLock, Exclusive } from 'exclusive-process';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

class ReportService {
  // Default name: this file plus "ReportService.build".
  @Exclusive()
  async build(id: number): Promise<string> {
    await sleep(100);
    return `report ${id} built`;
  }

  // Callers queue for up to 5 s; this process and every other one share the lock 'migrate'.
  @Exclusive({ name: 'migrate', wait: 5_000 })
  async migrate(step: number): Promise<string> {
    await sleep(50);
    return `migration step ${step} applied`;
  }
}

async function main(): Promise<void> {
  const service = new ReportService();
  const [first, second] = await Promise.allSettled([service.build(1), service.build(2)]);
  console.log(first.status === 'fulfilled' ? first.value : first.reason);
  if (second.status === 'rejected' && second.reason instanceof CannotAcquireLock) {
    console.log(`second build refused (${second.reason.reason}): ${second.reason.message}`);
  }
  for (const result of await Promise.all([service.migrate(1), service.migrate(2), service.migrate(3)])) console.log(result);
}

void main();

// Any function made exclusive, a holder inspected, and `await using`.
//
//   npx tsx examples/wrapped-function.ts
import { Exclusive, exclusive } from 'exclusive-process';

const sync = exclusive(
  async (source: string) => {
    const holder = Exclusive.holder('inventory-sync');
    console.log(`syncing ${source}; holder pid ${holder?.pid} (this process: ${process.pid})`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  },
  { name: 'inventory-sync', wait: true }
);

async function main(): Promise<void> {
  await Promise.all([sync('warehouse A'), sync('warehouse B')]); // one after the other
  console.log(`after: holder ${JSON.stringify(Exclusive.holder('inventory-sync'))}`);

  await using lock = await Exclusive.acquire({ name: 'inventory-sync' });
  console.log(`held by hand: ${lock.name} at ${lock.lockfile}`);
}

void main();

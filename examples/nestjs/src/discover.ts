// Lists every exclusive method of the app, with its lock's name and options,
// through Nest's DiscoveryService and the metadata @Exclusive records.
//
//   npm run build && npm run discover
import 'reflect-metadata';
import { Injectable, Module } from '@nestjs/common';
import { DiscoveryModule, DiscoveryService, MetadataScanner, NestFactory } from '@nestjs/core';
import { EXCLUSIVE_METADATA, type ExclusiveOptions } from 'exclusive-process';
import { AppModule } from './app.module.js';

/** One exclusive method: its provider, method and the options recorded by @Exclusive (with the lock's resolved `name`). */
export interface ExclusiveMethod {
  provider: string;
  method: string;
  options: ExclusiveOptions & { name: string };
}

@Injectable()
export class ExclusiveExplorer {
  constructor(
    private readonly discovery: DiscoveryService,
    private readonly scanner: MetadataScanner
  ) {}

  /** Every method of every provider instance that @Exclusive decorated. */
  list(): ExclusiveMethod[] {
    const found: ExclusiveMethod[] = [];
    for (const wrapper of this.discovery.getProviders()) {
      const instance: unknown = wrapper.instance;
      if (typeof instance !== 'object' || instance === null) continue;
      const prototype = Object.getPrototypeOf(instance) as object;
      for (const method of this.scanner.getAllMethodNames(prototype)) {
        const options = Reflect.getMetadata(EXCLUSIVE_METADATA, prototype, method) as ExclusiveMethod['options'] | undefined;
        if (options !== undefined) found.push({ provider: String(wrapper.name), method, options });
      }
    }
    return found;
  }
}

@Module({ imports: [DiscoveryModule, AppModule.register()], providers: [ExclusiveExplorer] })
class DiscoverModule {}

const app = await NestFactory.createApplicationContext(DiscoverModule, { logger: ['error', 'warn'] });
for (const { provider, method, options } of app.get(ExclusiveExplorer).list()) {
  console.log(`${provider}.${method}: ${JSON.stringify(options)}`);
}
await app.close();

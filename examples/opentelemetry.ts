// Lock acquisitions as OpenTelemetry spans, from the `exclusive-process:acquire`
// diagnostics channel: no wrapper around the lock calls, no cost when nothing
// subscribes. Does a success, a conflict with a second process, then a wait
// for that process to let go, and prints the spans (one JSON line each).
//
//   npx tsx examples/opentelemetry.ts
import { spawn } from 'node:child_process';
import { subscribe, tracingChannel } from 'node:diagnostics_channel';
import { context, SpanStatusCode, trace, type Span } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { CHANNELS, Exclusive, type AcquireContext, type LostMessage } from 'exclusive-process';

const NAME = 'opentelemetry-example';

// The OpenTelemetry side: spans kept in memory (use an OTLP exporter in production).
const exporter = new InMemorySpanExporter();
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));
const tracer = trace.getTracer('exclusive-process-example');

/** Turns each acquisition into a span: started at `start`, ended when the outcome is known. */
function traceLocks(): void {
  const spans = new WeakMap<AcquireContext, Span>();
  const finish = (c: AcquireContext): void => {
    const span = spans.get(c);
    if (span === undefined) return;
    span.setAttributes({
      'exclusive_process.outcome': c.outcome ?? 'error',
      'exclusive_process.waited_ms': Math.round(c.waitedMs ?? 0),
      'exclusive_process.reentered': c.reentered === true,
    });
    if (c.outcome === 'acquired') span.setStatus({ code: SpanStatusCode.OK });
    else span.setStatus({ code: SpanStatusCode.ERROR, message: (c.error as Error | undefined)?.message });
    span.end();
  };
  tracingChannel<unknown, AcquireContext>(CHANNELS.acquire).subscribe({
    start: (c) =>
      spans.set(
        c,
        tracer.startSpan(`exclusive-process acquire ${c.name}`, {
          attributes: {
            'exclusive_process.lock_name': c.name,
            'exclusive_process.driver': c.driver,
            'exclusive_process.mode': c.mode,
            'exclusive_process.wait_ms': c.wait === Infinity ? -1 : c.wait,
            'exclusive_process.lockfile': c.lockfile,
          },
        })
      ),
    end: (c) => c.synchronous && finish(c),
    asyncStart: () => {},
    asyncEnd: finish,
    error: (c) => spans.get(c)?.recordException(c.error as Error),
  });
  // A lost lock (postgres) is worth an event on whatever span is active.
  subscribe(CHANNELS.lost, (m) => trace.getActiveSpan()?.addEvent('exclusive-process lock lost', { name: (m as LostMessage).name }));
}

/** A second process that takes the lock, says "held", and lets go when it reads a line. */
function startHolder(): Promise<{ release: () => Promise<void> }> {
  const child = spawn(process.execPath, [...process.execArgv, __filename, 'hold'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  return new Promise((resolve) =>
    child.stdout.once('data', () =>
      resolve({
        release: () => {
          child.stdin.end('release\n');
          return exited;
        },
      })
    )
  );
}

async function hold(): Promise<void> {
  const lock = await Exclusive.acquire({ name: NAME });
  process.stdout.write('held\n');
  process.stdin.once('data', () => void lock.release().then(() => process.exit(0)));
}

async function main(): Promise<void> {
  traceLocks();
  await tracer.startActiveSpan('example', async (root) => {
    await Exclusive.run({ name: NAME }, () => {}); // 1. free: acquired at once
    const holder = await startHolder();
    await Exclusive.acquire({ name: NAME }).catch(() => {}); // 2. held by the other process, no wait: a conflict
    setTimeout(() => void holder.release(), 200);
    const lock = await Exclusive.acquire({ name: NAME, wait: 10_000 }); // 3. waits for the other process to let go
    await lock.release();
    root.end();
  });
  for (const span of exporter.getFinishedSpans()) {
    console.log(
      JSON.stringify({
        name: span.name,
        status: SpanStatusCode[span.status.code],
        parent: span.parentSpanContext?.spanId ?? null,
        spanId: span.spanContext().spanId,
        attributes: span.attributes,
      })
    );
  }
}

void (process.argv[2] === 'hold' ? hold() : main());

import type { Logger } from './logger.ts';

/**
 * Clean exits on SIGINT / SIGTERM. Work that leaves things behind while it runs (the release's
 * staging folder, the output lock, a site build's temp folders) registers how to undo them; a
 * signal prints one line, runs those undo steps (newest first) and exits with 128 + the signal
 * number (130, 143). The steps are synchronous (fs.rmSync and the like): the run may be in the
 * middle of a computation that would not let asynchronous work finish.
 */
const cleanups = new Set<() => void>();

/** Registers a synchronous undo step for an interruption; call the returned function once the work is done. */
export function onInterrupt(fn: () => void): () => void {
  cleanups.add(fn);
  return () => { cleanups.delete(fn); };
}

let installed = false;

/** For the CLI: handle SIGINT and SIGTERM as above (a second signal exits at once). */
export function installSignalHandlers(logger: Logger, write: (line: string) => void = (l) => process.stderr.write(`${l}\n`)): void {
  if (installed) return;
  installed = true;
  let stopping = false;
  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    process.on(signal, () => {
      if (stopping) process.exit(code);
      stopping = true;
      write(`convlens: interrupted (${signal}); removing what the run had not finished`);
      for (const fn of [...cleanups].reverse()) {
        try {
          fn();
        } catch (err) {
          logger.debug(`cleanup after ${signal} failed: ${(err as Error).message}`);
        }
      }
      process.exit(code);
    });
  }
}

let lastYield = 0;

/**
 * Lets the event loop run (signals, worker replies) when 100 ms have passed since it last did.
 * Long synchronous loops on the main thread (class visualization steps, integrated-gradients
 * and SmoothGrad chunks, occlusion and curve batches) await it, so Ctrl-C stops a run promptly.
 */
export async function yieldIfDue(): Promise<void> {
  const now = performance.now();
  if (now - lastYield < 100) return;
  lastYield = now;
  await new Promise((resolve) => setImmediate(resolve));
}

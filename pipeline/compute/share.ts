import type { WorkerPool } from './worker-pool.ts';

/**
 * Runs `items` on the worker pool: each item goes to the next free worker, and the main thread
 * only hands them out (it computes an item itself only when its worker failed, or when there is
 * no pool). Results come back in item order, whoever computed them, and local runs never overlap
 * (methods switch global tfjs state such as the ReLU backward rule).
 */
export async function shareWork<T, R>(
  items: readonly T[],
  pool: WorkerPool | undefined,
  local: (item: T) => Promise<R>,
  remote: (pool: WorkerPool, item: T) => Promise<R>,
  done?: (index: number) => void,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let chain: Promise<unknown> = Promise.resolve();
  const here = (item: T): Promise<R> => {
    const run = chain.then(() => local(item));
    chain = run.catch(() => undefined);
    return run;
  };
  const pending: Promise<void>[] = [];
  for (let i = 0; i < items.length; i++) {
    const item = items[i];
    if (pool) await pool.free();
    if (pool?.idle) {
      pending.push(remote(pool, item).catch(() => here(item)).then((r) => { results[i] = r; done?.(i); }));
    } else {
      results[i] = await here(item);
      done?.(i);
    }
  }
  await Promise.all(pending);
  return results;
}

import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { link, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { ConvlensError } from './errors.ts';
import type { Logger } from './logger.ts';

/** What a lock file holds. */
interface Holder {
  pid: number;
  host: string;
  started: string;
}

export interface OutputLock {
  /** Removes the lock file (only if it is still this process's). */
  release(): Promise<void>;
  /** release, synchronously (for a signal handler). */
  releaseSync(): void;
}

const LOCK = '.convlens.lock';

/** Whether a process with this pid runs on this machine (EPERM: it runs, as another user). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Takes the lock of an output folder, so two runs never write one folder at once: a file
 * `.convlens.lock` created exclusively, naming the holder's pid, host and start time. A lock
 * whose holder is gone (same host, dead pid) is taken over with a warning. A live holder makes
 * this fail at once, naming it, or, with `wait`, poll until it is gone.
 */
export async function lockOutput(outputDir: string, opts: { wait?: boolean; logger: Logger; configKey?: string; pollMs?: number }): Promise<OutputLock> {
  await mkdir(outputDir, { recursive: true });
  const path = join(outputDir, LOCK);
  const me: Holder = { pid: process.pid, host: hostname(), started: new Date().toISOString() };
  let waited = false;
  for (;;) {
    // the lock file appears whole: written under a private name, then hard-linked (fails if taken)
    const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}`;
    await writeFile(tmp, `${JSON.stringify(me)}\n`);
    try {
      await link(tmp, path);
      await rm(tmp, { force: true });
      const mine = (text: string) => { try { const h = JSON.parse(text) as Holder; return h.pid === me.pid && h.host === me.host && h.started === me.started; } catch { return false; } };
      return {
        release: async () => {
          const text = await readFile(path, 'utf8').catch(() => '');
          if (mine(text)) await rm(path, { force: true });
        },
        releaseSync: () => {
          let text = '';
          try { text = readFileSync(path, 'utf8'); } catch { return; }
          if (mine(text)) rmSync(path, { force: true });
        },
      };
    } catch (err) {
      await rm(tmp, { force: true });
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const holder = await readHolder(path);
    if (holder === 'gone') continue;
    if (!holder || (holder.host === me.host && !processAlive(holder.pid))) {
      opts.logger.warn(`${path}: taking over a lock left by ${holder ? `pid ${holder.pid} (started ${holder.started}), which is no longer running` : 'a run that left it unreadable'}`);
      await rm(path, { force: true });
      continue;
    }
    if (!opts.wait) {
      throw new ConvlensError(`${opts.configKey ? `${opts.configKey}: ` : ''}another convlens run (pid ${holder.pid} on ${holder.host}, started ${holder.started}) is writing to ${outputDir}`, {
        hint: `Wait for it to finish, run again with --wait to queue behind it, or use another output.dir. If no such run exists, delete ${path}.`,
      });
    }
    if (!waited) {
      opts.logger.info(`waiting for the convlens run with pid ${holder.pid} to finish writing ${outputDir} ...`);
      waited = true;
    }
    await new Promise((resolve) => setTimeout(resolve, opts.pollMs ?? 500));
  }
}

/** The holder named in the lock file; undefined when unreadable, 'gone' when the file went away. */
async function readHolder(path: string): Promise<Holder | undefined | 'gone'> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'gone';
    throw err;
  }
  try {
    const h = JSON.parse(text) as Holder;
    return Number.isInteger(h?.pid) && typeof h.host === 'string' ? h : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Logging is passed in, never global: the CLI gives a console logger, tests a memory logger
 * they can assert on. `progress` drives a live bar on a terminal and plain lines elsewhere (CI).
 */
export interface Progress {
  tick(n?: number): void;
  done(summary?: string): void;
}

export interface Logger {
  info(msg: string): void;
  warn(msg: string): void;
  debug(msg: string): void;
  /** A counted task: a bar on a TTY, a start line and an end line otherwise. */
  progress(label: string, total: number): Progress;
}

export interface LogRecord {
  level: 'info' | 'warn' | 'debug';
  msg: string;
}

/** Collects records in memory; tests read `records`. */
export class MemoryLogger implements Logger {
  readonly records: LogRecord[] = [];
  info(msg: string) { this.records.push({ level: 'info', msg }); }
  warn(msg: string) { this.records.push({ level: 'warn', msg }); }
  debug(msg: string) { this.records.push({ level: 'debug', msg }); }
  progress(label: string, total: number): Progress {
    let n = 0;
    return {
      tick: (k = 1) => { n += k; },
      done: (summary) => this.info(`${label}: ${summary ?? `${n}/${total}`}`),
    };
  }
  text(): string {
    return this.records.map((r) => `${r.level}: ${r.msg}`).join('\n');
  }
}

export const silentLogger: Logger = {
  info() {}, warn() {}, debug() {},
  progress: () => ({ tick() {}, done() {} }),
};

export interface ConsoleLoggerOptions {
  debug?: boolean;
  /** Draw live bars; defaults to stderr being a TTY and CI unset. */
  live?: boolean;
  stream?: NodeJS.WriteStream;
  /** Without live bars, a progress line at most this often while a task runs (ms; default 10 s). */
  every?: number;
  /** Milliseconds from some origin (tests pass a fake clock). */
  now?: () => number;
}

/** `12/128, 1.5/s, about 1m 17s left`: the count, the rate so far and the time left at that rate. */
export function progressText(n: number, total: number, elapsedMs: number): string {
  const rate = elapsedMs > 0 ? (n * 1000) / elapsedMs : 0;
  const parts = [`${n}/${total}`];
  if (n > 0 && elapsedMs > 0) {
    parts.push(rate >= 1 ? `${rate.toFixed(rate >= 10 ? 0 : 1)}/s` : `${(1 / rate).toFixed(1)}s each`);
    if (n < total) parts.push(`about ${formatDuration(((total - n) / rate) * 1000)} left`);
  }
  return parts.join(', ');
}

/** 950 ms -> `1s`, 77 s -> `1m 17s`, 2 h 5 min -> `2h 5m`. */
export function formatDuration(ms: number): string {
  const s = Math.max(1, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  return `${Math.floor(m / 60)}h ${m % 60}m`;
}

export class ConsoleLogger implements Logger {
  private readonly stream: NodeJS.WriteStream;
  private readonly live: boolean;
  private readonly showDebug: boolean;
  private readonly every: number;
  private readonly now: () => number;
  constructor(opts: ConsoleLoggerOptions = {}) {
    this.stream = opts.stream ?? process.stderr;
    this.live = opts.live ?? (Boolean(this.stream.isTTY) && !process.env.CI);
    this.showDebug = opts.debug ?? false;
    this.every = opts.every ?? 10_000;
    this.now = opts.now ?? (() => performance.now());
  }
  info(msg: string) { this.stream.write(`${msg}\n`); }
  warn(msg: string) { this.stream.write(`warning: ${msg}\n`); }
  debug(msg: string) { if (this.showDebug) this.stream.write(`debug: ${msg}\n`); }
  /**
   * On a terminal a bar redrawn at most every 100 ms; elsewhere (CI, pipes) a start line, a line
   * at most every `every` ms while ticks arrive, and an end line. Both show the rate and the time
   * left at the rate so far.
   */
  progress(label: string, total: number): Progress {
    const start = this.now();
    let n = 0;
    let lastDraw = start;
    const draw = (now: number) => {
      const width = 24;
      const filled = total > 0 ? Math.min(width, Math.round((n / total) * width)) : width;
      this.stream.write(`\r\x1b[2K${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${progressText(n, total, now - start)}`);
    };
    if (!this.live) this.stream.write(`${label}: ${total} to do\n`);
    return {
      tick: (k = 1) => {
        n += k;
        const now = this.now();
        if (this.live) {
          if (now - lastDraw > 100 || n >= total) { lastDraw = now; draw(now); }
        } else if (now - lastDraw >= this.every && n < total) {
          lastDraw = now;
          this.stream.write(`${label}: ${progressText(n, total, now - start)}\n`);
        }
      },
      done: (summary) => {
        const secs = ((this.now() - start) / 1000).toFixed(1);
        if (this.live) this.stream.write('\r\x1b[2K');
        this.stream.write(`${label}: ${summary ?? `${n}/${total}`} in ${secs}s\n`);
      },
    };
  }
}

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
}

export class ConsoleLogger implements Logger {
  private readonly stream: NodeJS.WriteStream;
  private readonly live: boolean;
  private readonly showDebug: boolean;
  constructor(opts: ConsoleLoggerOptions = {}) {
    this.stream = opts.stream ?? process.stderr;
    this.live = opts.live ?? (Boolean(this.stream.isTTY) && !process.env.CI);
    this.showDebug = opts.debug ?? false;
  }
  info(msg: string) { this.stream.write(`${msg}\n`); }
  warn(msg: string) { this.stream.write(`warning: ${msg}\n`); }
  debug(msg: string) { if (this.showDebug) this.stream.write(`debug: ${msg}\n`); }
  progress(label: string, total: number): Progress {
    const start = performance.now();
    let n = 0;
    let lastDraw = 0;
    const draw = () => {
      const width = 24;
      const filled = total > 0 ? Math.round((n / total) * width) : width;
      const secs = ((performance.now() - start) / 1000).toFixed(1);
      this.stream.write(`\r${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${n}/${total} ${secs}s`);
    };
    if (!this.live) this.stream.write(`${label}: ${total} to do\n`);
    return {
      tick: (k = 1) => {
        n += k;
        const now = performance.now();
        if (this.live && (now - lastDraw > 100 || n >= total)) { lastDraw = now; draw(); }
      },
      done: (summary) => {
        const secs = ((performance.now() - start) / 1000).toFixed(1);
        if (this.live) this.stream.write('\r\x1b[2K');
        this.stream.write(`${label}: ${summary ?? `${n}/${total}`} in ${secs}s\n`);
      },
    };
  }
}

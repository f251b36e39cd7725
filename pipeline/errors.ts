/**
 * The one error type users see. Every failure that reaches the CLI is turned into a
 * ConvlensError, printed as one readable message (what happened, why, what to do);
 * the stack is printed only with `--debug`.
 */
export class ConvlensError extends Error {
  /** What to do about it; printed on its own line after the message. */
  readonly hint?: string;
  constructor(message: string, options: { hint?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ConvlensError';
    this.hint = options.hint;
  }
}

const FS_REASONS: Record<string, [string, string]> = {
  ENOSPC: ['the disk is full', 'Free some space (old releases under <output>/releases/ can go) and run again.'],
  EDQUOT: ['the disk quota is used up', 'Free some space and run again.'],
  EROFS: ['the file system is read-only', 'Point output.dir in the config at a writable folder.'],
  EACCES: ['permission denied', 'Make the folder writable for this user, or point output.dir elsewhere.'],
  EPERM: ['the operation is not permitted', 'Make the folder writable for this user, or point output.dir elsewhere.'],
  ENOTDIR: ['a part of the path is a file, not a folder', 'Remove or rename that file, or point output.dir at a folder.'],
  EISDIR: ['a folder is in the way of a file', 'Remove or rename that folder.'],
  EEXIST: ['a file is where a folder should be', 'Remove or rename that file, or point output.dir at a folder.'],
  EMFILE: ['too many files are open', 'Raise the open-file limit (ulimit -n) and run again.'],
};

/**
 * A file-system failure (disk full, read-only, a file where a folder should be, ...) as a
 * ConvlensError that says what, where and what to do; undefined for anything else.
 */
export function fileSystemError(err: unknown, doing = 'writing', key?: string): ConvlensError | undefined {
  if (err instanceof ConvlensError || !(err instanceof Error)) return undefined;
  const e = err as NodeJS.ErrnoException;
  const known = e.code ? FS_REASONS[e.code] : undefined;
  if (!known) return undefined;
  const where = e.path ? ` ${e.path}` : '';
  return new ConvlensError(`${key ? `${key}: ` : ''}${doing}${where} failed: ${known[0]} (${e.code})`, { hint: known[1], cause: err });
}

/** Formats any thrown value as the text the CLI prints. */
export function formatError(err: unknown, debug = false): string {
  err = fileSystemError(err) ?? err;
  if (err instanceof ConvlensError) {
    const lines = [`convlens: ${err.message}`];
    if (err.hint) lines.push(`  ${err.hint}`);
    if (debug) lines.push(err.stack ?? '', causeText(err.cause));
    return lines.filter(Boolean).join('\n');
  }
  const e = err instanceof Error ? err : new Error(String(err));
  const lines = [`convlens: unexpected error: ${e.message}`];
  lines.push(debug ? (e.stack ?? '') : '  Run again with --debug for the stack trace, and report it if it looks like a bug.');
  return lines.join('\n');
}

function causeText(cause: unknown): string {
  if (cause === undefined) return '';
  return cause instanceof Error ? `caused by: ${cause.stack ?? cause.message}` : `caused by: ${String(cause)}`;
}

/** Levenshtein distance, for "nearest: ..." suggestions. */
export function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0];
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j];
      prev[j] = Math.min(prev[j] + 1, prev[j - 1] + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = tmp;
    }
  }
  return prev[b.length];
}

/** The `count` names closest to `name` (edit distance, ties in the given order). */
export function nearest(name: string, candidates: readonly string[], count = 3): string[] {
  return candidates
    .map((c, i) => ({ c, i, d: editDistance(name.toLowerCase(), c.toLowerCase()) }))
    .sort((x, y) => x.d - y.d || x.i - y.i)
    .slice(0, count)
    .map((x) => x.c);
}

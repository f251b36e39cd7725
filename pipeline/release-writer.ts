import { rmSync } from 'node:fs';
import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { swapDir, writeFileAtomic, writeJsonAtomic } from './fs-atomic.ts';
import { encodeNpy } from './npy.ts';
import { encodeImage } from './render.ts';
import { type Artifact, type Manifest, parseManifest } from './manifest.ts';
import { slug } from './data/ids.ts';

/** The file that marks a staging folder as convlens's own unfinished release. */
const STAGING_MARK = '.convlens-staging';

/**
 * Removes the staging folders of unfinished releases in `releasesDir` (hidden
 * `.<release>.staging-<hex>` folders holding convlens's mark; call while holding the output
 * lock, so none of them belongs to a live run). Returns how many went.
 */
export async function sweepStaging(releasesDir: string): Promise<number> {
  let removed = 0;
  let entries: string[];
  try {
    entries = await readdir(releasesDir);
  } catch {
    return 0;
  }
  for (const e of entries) {
    if (!/^\..+\.staging-[0-9a-f]+$/.test(e)) continue;
    if (!(await stat(join(releasesDir, e, STAGING_MARK)).catch(() => undefined))) continue;
    await rm(join(releasesDir, e), { recursive: true, force: true });
    removed++;
  }
  return removed;
}

/** File names in a release are `slug(name)` (data/ids.ts, FILE_NAME_SLUG); re-exported for the methods. */
export { slug };

type ArtifactMeta = Omit<Artifact, 'path' | 'kind' | 'raw' | 'width' | 'height' | 'files'>;
type Picture = { pixels: Uint8Array; width: number; height: number; channels: 1 | 3 };
type RawMap = { data: Float32Array; shape: number[] };

/** What methods write through (MethodContext.out): a release, or a capture sent back from a worker. */
export interface ArtifactSink {
  image(dir: string, name: string, meta: ArtifactMeta, img: Picture, raw?: RawMap): Promise<Artifact>;
  data(dir: string, name: string, meta: ArtifactMeta, value: unknown, files?: string[]): Promise<Artifact>;
  file(path: string, bytes: Uint8Array): Promise<string>;
}

/** A picture already encoded in the release's image format. */
type Encoded = { bytes: Uint8Array; width: number; height: number };

/** One recorded write of a CaptureSink (plain data: it crosses worker threads). */
export type SinkOp =
  | { kind: 'image'; dir: string; name: string; meta: ArtifactMeta; img: Picture; raw?: RawMap }
  | { kind: 'encoded'; dir: string; name: string; meta: ArtifactMeta; img: Encoded; raw?: RawMap }
  | { kind: 'data'; dir: string; name: string; meta: ArtifactMeta; value: unknown; files?: string[] }
  | { kind: 'file'; path: string; bytes: Uint8Array };

/**
 * Records what a method writes instead of writing it: the arrays a method computed, and, given
 * the release's image format, its pictures already encoded (so a worker does that work too).
 * `replay` writes them, in the order they were made, into a real sink, so a method run on a
 * worker (or on a part of the samples) ends up in the release exactly as if run in place.
 * The artifacts it returns are provisional (paths are given by the real sink).
 */
export class CaptureSink implements ArtifactSink {
  readonly ops: SinkOp[] = [];

  constructor(private readonly imageFormat?: 'png' | 'webp') {}

  async image(dir: string, name: string, meta: ArtifactMeta, img: Picture, raw?: RawMap): Promise<Artifact> {
    const extra = raw ? { raw } : {};
    if (this.imageFormat) {
      const bytes = await encodeImage(img.pixels, img.width, img.height, img.channels, this.imageFormat);
      this.ops.push({ kind: 'encoded', dir, name, meta, img: { bytes, width: img.width, height: img.height }, ...extra });
    } else {
      this.ops.push({ kind: 'image', dir, name, meta, img, ...extra });
    }
    return { ...meta, kind: 'image', path: `${dir}/${slug(name)}`, width: img.width, height: img.height };
  }

  async data(dir: string, name: string, meta: ArtifactMeta, value: unknown, files?: string[]): Promise<Artifact> {
    this.ops.push({ kind: 'data', dir, name, meta, value, ...(files ? { files } : {}) });
    return { ...meta, kind: 'data', path: `${dir}/${slug(name)}.json` };
  }

  async file(path: string, bytes: Uint8Array): Promise<string> {
    this.ops.push({ kind: 'file', path, bytes });
    return path;
  }
}

/** Writes recorded ops into `sink`, in order. */
export async function replay(ops: readonly SinkOp[], sink: ArtifactSink): Promise<void> {
  for (const op of ops) {
    if (op.kind === 'image') await sink.image(op.dir, op.name, op.meta, op.img, op.raw);
    else if (op.kind === 'encoded') {
      if (!(sink instanceof ReleaseWriter)) throw new Error('convlens: internal error: encoded pictures replay into a release only');
      await sink.encodedImage(op.dir, op.name, op.meta, op.img, op.raw);
    } else if (op.kind === 'data') await sink.data(op.dir, op.name, op.meta, op.value, op.files);
    else await sink.file(op.path, op.bytes);
  }
}

/**
 * Writes one release. Everything goes to a staging folder beside the release; `commit` writes
 * the manifest last and swaps the folder in, so a failed run leaves the previous release whole
 * and never a half-written one.
 */
export class ReleaseWriter implements ArtifactSink {
  readonly artifacts: Artifact[] = [];
  readonly staging: string;
  private readonly ids = new Set<string>();
  private readonly paths = new Set<string>();

  constructor(readonly releasesDir: string, readonly release: string, readonly imageFormat: 'png' | 'webp') {
    this.staging = join(releasesDir, `.${release}.staging-${randomBytes(4).toString('hex')}`);
  }

  async open(): Promise<void> {
    await mkdir(this.staging, { recursive: true });
    await writeFileAtomic(join(this.staging, STAGING_MARK), `${process.pid}\n`);
  }

  /** Writes a picture and registers it; `raw` also saves the float map as .npy beside it. */
  async image(dir: string, name: string, meta: ArtifactMeta, img: Picture, raw?: RawMap): Promise<Artifact> {
    const bytes = await encodeImage(img.pixels, img.width, img.height, img.channels, this.imageFormat);
    return this.encodedImage(dir, name, meta, { bytes, width: img.width, height: img.height }, raw);
  }

  /** As `image`, for a picture already encoded in this release's image format. */
  async encodedImage(dir: string, name: string, meta: ArtifactMeta, img: Encoded, raw?: RawMap): Promise<Artifact> {
    const stem = this.claim(`${dir}/${slug(name)}`, raw ? [this.imageFormat, 'npy'] : [this.imageFormat]);
    const path = `${stem}.${this.imageFormat}`;
    await writeFileAtomic(join(this.staging, path), img.bytes);
    const artifact: Artifact = { ...meta, kind: 'image', path, width: img.width, height: img.height };
    if (raw) {
      const rawPath = `${stem}.npy`;
      await writeFileAtomic(join(this.staging, rawPath), encodeNpy(raw.data, raw.shape));
      artifact.raw = { path: rawPath, format: 'npy', dtype: 'float32', shape: raw.shape };
    }
    return this.add(artifact);
  }

  /**
   * Writes a JSON data artifact the site reads. `files` are further files (written with `file`)
   * that the JSON refers to; the manifest lists them so the site copies them.
   */
  async data(dir: string, name: string, meta: ArtifactMeta, value: unknown, files?: string[]): Promise<Artifact> {
    const path = `${this.claim(`${dir}/${slug(name)}`, ['json'])}.json`;
    await writeJsonAtomic(join(this.staging, path), value);
    return this.add({ ...meta, kind: 'data', path, ...(files?.length ? { files } : {}) });
  }

  /** Writes a file that is referenced from the manifest outside `artifacts` (sample images). */
  async file(path: string, bytes: Uint8Array): Promise<string> {
    this.paths.add(path);
    await writeFileAtomic(join(this.staging, path), bytes);
    return path;
  }

  /**
   * `base` with the extensions, made unique in this release: slug() folds names (case, symbols),
   * so two different names can meet; the later one gets -2, -3, ... instead of overwriting.
   */
  private claim(base: string, exts: readonly string[]): string {
    let stem = base;
    for (let k = 2; exts.some((e) => this.paths.has(`${stem}.${e}`)); k++) stem = `${base}-${k}`;
    for (const e of exts) this.paths.add(`${stem}.${e}`);
    return stem;
  }

  private add(a: Artifact): Artifact {
    if (this.ids.has(a.id)) throw new Error(`convlens: internal error: duplicate artifact id ${a.id}`);
    this.ids.add(a.id);
    // the manifest holds finite numbers only: NaN and infinities in stats are kept as text
    if (a.stats) a.stats = Object.fromEntries(Object.entries(a.stats).map(([k, v]) => [k, typeof v === 'number' && !Number.isFinite(v) ? String(v) : v]));
    this.artifacts.push(a);
    return a;
  }

  /** Validates and writes the manifest, then replaces the release folder with the staging one. */
  async commit(manifest: Manifest): Promise<string> {
    const checked = parseManifest(manifest);
    const listed = [...checked.samples.map((x) => x.path), ...(checked.summary ? [checked.summary.markdown, checked.summary.html] : []), ...checked.artifacts.flatMap((a) => [a.path, ...(a.raw ? [a.raw.path] : []), ...(a.files ?? [])])];
    const missing = (await Promise.all(listed.map(async (p) => ((await stat(join(this.staging, p)).catch(() => undefined)) ? undefined : p)))).filter(Boolean);
    if (missing.length) throw new Error(`convlens: internal error: the manifest lists files that were not written: ${missing.slice(0, 5).join(', ')}`);
    await writeJsonAtomic(join(this.staging, 'manifest.json'), checked);
    await rm(join(this.staging, STAGING_MARK), { force: true });
    const final = join(this.releasesDir, this.release);
    await swapDir(this.staging, final);
    return final;
  }

  async abort(): Promise<void> {
    await rm(this.staging, { recursive: true, force: true });
  }

  /** abort, synchronously (for a signal handler). */
  abortSync(): void {
    rmSync(this.staging, { recursive: true, force: true });
  }
}

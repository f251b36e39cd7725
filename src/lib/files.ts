import { closeSync, openSync, readSync } from 'node:fs';
import type { z } from 'zod';
import { parseDataFile } from '../../pipeline/data-files.ts';
import { listedFiles, readDataArtifact, releaseFile, releaseLocation, type Artifact, type Manifest, type ReleaseLocation } from './manifest.ts';
import { releaseFileSegments } from './paths.ts';

/**
 * The release's files as the page views read them: data files parsed with their schema, whether
 * a path is one the manifest lists (only listed files are copied into the site), picture sizes.
 */

/**
 * A data artifact's JSON parsed with its schema from pipeline/data-files.ts. A file of another
 * shape throws, one line per wrong field (`<path> (data artifact <id>): <field>: <problem>`), so
 * the site build fails naming it rather than showing an empty page.
 */
export function readDataFile<S extends z.ZodType>(artifact: Artifact, schema: S, loc: ReleaseLocation = releaseLocation()): z.infer<S> {
  return parseDataFile(schema, readDataArtifact(artifact, loc), `${artifact.path} (data artifact ${artifact.id})`);
}

const listedCache = new WeakMap<Manifest, Set<string>>();

/** Whether a release path (as a data file writes it) names a file the manifest lists. */
export function isListed(manifest: Manifest, releasePath: string): boolean {
  let s = listedCache.get(manifest);
  if (!s) {
    s = new Set(listedFiles(manifest));
    listedCache.set(manifest, s);
  }
  return s.has(normalize(releasePath));
}

function normalize(p: string): string {
  try {
    return releaseFileSegments(p).join('/');
  } catch {
    return '';
  }
}

/**
 * Pixel size of a PNG or WebP file from its header (the site needs width/height on every img
 * and data artifacts do not record the size of their thumbnails); undefined for anything else.
 */
export function imageSize(file: string): { width: number; height: number } | undefined {
  const buf = Buffer.alloc(32);
  let fd: number | undefined;
  try {
    fd = openSync(file, 'r');
    const n = readSync(fd, buf, 0, 32, 0);
    if (n < 24) return undefined;
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  if (buf.readUInt32BE(0) === 0x89504e47 && buf.toString('latin1', 12, 16) === 'IHDR') {
    return { width: buf.readUInt32BE(16), height: buf.readUInt32BE(20) };
  }
  if (buf.toString('latin1', 0, 4) === 'RIFF' && buf.toString('latin1', 8, 12) === 'WEBP') {
    const chunk = buf.toString('latin1', 12, 16);
    if (chunk === 'VP8X') return { width: 1 + buf.readUIntLE(24, 3), height: 1 + buf.readUIntLE(27, 3) };
    if (chunk === 'VP8L') {
      const bits = buf.readUInt32LE(21);
      return { width: 1 + (bits & 0x3fff), height: 1 + ((bits >> 14) & 0x3fff) };
    }
    if (chunk === 'VP8 ') return { width: buf.readUInt16LE(26) & 0x3fff, height: buf.readUInt16LE(28) & 0x3fff };
  }
  return undefined;
}

/** Size of a release file (see imageSize). */
export function releaseImageSize(releasePath: string, loc: ReleaseLocation = releaseLocation()): { width: number; height: number } | undefined {
  try {
    return imageSize(releaseFile(releasePath, loc));
  } catch {
    return undefined;
  }
}

/** Box-fitting display size: the picture scaled to fit `side`×`side` keeping its aspect ratio. */
export function fitSize(w: number | undefined, h: number | undefined, side: number): { width: number; height: number; pixelated: boolean } {
  if (!w || !h) return { width: side, height: side, pixelated: false };
  const f = side / Math.max(w, h);
  return { width: Math.max(1, Math.round(w * f)), height: Math.max(1, Math.round(h * f)), pixelated: f > 1 };
}

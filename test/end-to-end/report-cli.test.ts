import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, readdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../pipeline/backend.ts';
import { silentLogger } from '../../pipeline/logger.ts';
import { parseManifest } from '../../pipeline/manifest.ts';
import { readModelArtifacts } from '../../pipeline/model/io.ts';
import { METHODS } from '../../pipeline/methods/registry.ts';
import { decodeNpy } from '../../pipeline/npy.ts';
import { makeTinyProject } from '../helpers/tiny-project.ts';

const run = promisify(execFile);
const BIN = resolve(import.meta.dirname, '../../bin/convlens.mjs');

async function convlens(args: string[]) {
  try {
    const r = await run(process.execPath, [BIN, ...args], { env: { ...process.env, CI: 'true' }, maxBuffer: 1 << 24 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

async function htmlFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await htmlFiles(p)));
    else if (e.name.endsWith('.html')) out.push(p);
  }
  return out;
}

/** Every local href/src of every page, resolved on disk (folder links -> index.html). */
async function brokenLinks(siteDir: string): Promise<string[]> {
  const broken: string[] = [];
  for (const page of await htmlFiles(siteDir)) {
    const html = await readFile(page, 'utf8');
    for (const m of html.matchAll(/(?:href|src)="([^"]*)"/g)) {
      const url = m[1].replace(/&amp;/g, '&');
      if (/^(https?:|mailto:|data:|#)/.test(url) || url === '') continue;
      const clean = decodeURIComponent(url.split('#')[0].split('?')[0]);
      if (clean.startsWith('/')) { broken.push(`${page}: absolute link ${url}`); continue; }
      let target = resolve(dirname(page), clean);
      if (clean.endsWith('/') || clean === '.' || clean === '..') target = join(target, 'index.html');
      if (!existsSync(target)) broken.push(`${page}: ${url}`);
    }
  }
  return broken;
}

describe('convlens report (CLI, end to end)', () => {
  beforeAll(async () => {
    await initBackend('wasm', silentLogger);
  });

  it('writes a valid manifest and a site whose every local link and image resolves', async () => {
    const p = await makeTinyProject();
    const r = await convlens(['report', '--config', p.config, '--release', 'r1', '--base', '/convlens-demo/']);
    expect(r.stderr).not.toContain('unexpected error');
    expect(r.code).toBe(0);
    // progress: one line per stage with counts and time, plain in CI
    expect(r.stderr).toMatch(/^grad-cam: 4 artifacts in \d+\.\ds$/m);
    expect(r.stderr).toMatch(/^backend: wasm, tfjs /m);

    const releaseDir = join(p.outputDir, 'releases', 'r1');
    const manifest = parseManifest(JSON.parse(await readFile(join(releaseDir, 'manifest.json'), 'utf8')));
    expect(manifest.release).toBe('r1');
    expect(manifest.backend.name).toBe('wasm');
    expect(manifest.model.params).toBe(p.params);
    expect(manifest.model.weightsSha256).toBe((await readModelArtifacts(join(p.dir, 'model'))).weightsSha256);
    expect(manifest.model.layers.reduce((s, l) => s + l.params, 0)).toBe(p.params);
    expect(manifest.model.classes).toEqual(p.classes);
    expect(manifest.samples.map((s) => s.id)).toEqual(['circle-circle-1', 'square-square-1']);
    expect(manifest.samples[0].labelName).toBe('circle');
    expect(manifest.samples[0].predictions).toHaveLength(3);
    expect(manifest.dataset.count).toBe(2);
    expect(manifest.methods.map((m) => m.id)).toEqual([...METHODS.map((m) => m.id), 'metrics']);
    // every artifact and raw file exists; raw maps load back with their shape
    for (const a of manifest.artifacts) {
      expect(existsSync(join(releaseDir, a.path)), a.path).toBe(true);
      if (a.raw) {
        const npy = decodeNpy(new Uint8Array(await readFile(join(releaseDir, a.raw.path))));
        expect(npy.shape).toEqual(a.raw.shape);
        expect(npy.data.every(Number.isFinite)).toBe(true);
      }
    }
    const cams = manifest.artifacts.filter((a) => a.method === 'grad-cam');
    expect(cams.map((a) => a.layer)).toEqual(['conv2', 'conv2', 'conv2', 'conv2']);
    expect(cams.find((a) => a.raw)?.raw?.shape).toEqual([8, 8]);
    const filters = manifest.artifacts.find((a) => a.method === 'filters');
    expect(filters?.layer).toBe('conv1');
    expect(filters?.raw?.shape).toEqual([4, 3, 3, 3]);

    const siteDir = join(p.outputDir, 'site');
    const pages = (await htmlFiles(siteDir)).map((f) => f.slice(siteDir.length + 1)).sort();
    expect(pages).toEqual(expect.arrayContaining(['index.html', 'filters/index.html', 'samples/circle-circle-1/index.html', 'samples/square-square-1/index.html']));
    expect(await brokenLinks(siteDir)).toEqual([]);
    const overview = await readFile(join(siteDir, 'index.html'), 'utf8');
    expect(overview).toContain('Tiny test CNN');
    expect(overview).toContain(p.params.toLocaleString('en-US'));
    const samplePage = await readFile(join(siteDir, 'samples/circle-circle-1/index.html'), 'utf8');
    expect(samplePage).toContain('Grad-CAM');
    // left nothing half-written beside the release
    expect((await readdir(join(p.outputDir, 'releases'))).filter((n) => n.startsWith('.'))).toEqual([]);

    // the last line names the command that serves this config's site, and that command does
    expect(r.stderr.trim().split('\n').at(-1)).toBe(`done: open ${join(siteDir, 'index.html')}, or serve it with \`npx convlens preview --config ${p.config}\``);
    const preview = spawn(process.execPath, [BIN, 'preview', '--config', p.config, '--port', '0', '--base', '/convlens-demo/'], { env: { ...process.env, CI: 'true' } });
    try {
      let err = '';
      preview.stderr.on('data', (b: Buffer) => { err += b.toString(); });
      await expect.poll(() => err, { timeout: 30_000 }).toMatch(/preview: .* at http:\/\/127\.0\.0\.1:\d+\/convlens-demo\/ \(Ctrl\+C to stop\)/);
      const url = /at (http:\S+)/.exec(err)![1];
      const page = await fetch(url);
      expect(page.status).toBe(200);
      expect(await page.text()).toBe(overview);
      expect((await fetch(`${url}samples/circle-circle-1/`)).status).toBe(200);
      expect((await fetch(url.replace('/convlens-demo/', '/'))).status).toBe(404);
      const exited = new Promise<number | null>((done) => preview.once('exit', (code) => done(code)));
      preview.kill('SIGINT');
      expect(await exited).toBe(0);
    } finally {
      preview.kill('SIGKILL');
    }
  }, 180_000);

  it('preview without a built site says how to build it', async () => {
    const p = await makeTinyProject();
    const r = await convlens(['preview', '--config', p.config]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^convlens: viz\.yaml: output\.dir: no site in .*output\/site\n  Build it first: convlens report --config /m);
    expect((await convlens(['preview', '--port', 'http'])).code).toBe(2);
  });

  it('fails before any work on an unknown layer, with the exact message, and writes nothing', async () => {
    const p = await makeTinyProject({ extraYaml: '  grad-cam:\n    layer: conv9\n' });
    const r = await convlens(['report', '--config', p.config]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('convlens: viz.yaml: methods.grad-cam.layer: no layer "conv9"; nearest: conv1, conv2, pool1\n');
    expect(r.stderr).not.toMatch(/\bat .*\.ts:\d+/); // no stack without --debug
    expect(existsSync(p.outputDir)).toBe(false);
    const dbg = await convlens(['report', '--config', p.config, '--debug']);
    expect(dbg.stderr).toMatch(/ConvlensError|at .*\.ts:\d+/);
    // the command that lists the layer names still works with that config
    const layers = await convlens(['layers', '--config', p.config]);
    expect(layers.code).toBe(0);
    expect(layers.stdout).toMatch(/^conv1 +Conv2D/m);
    expect(layers.stdout).toMatch(/^conv2 +Conv2D/m);
  }, 120_000);

  it('fails with the key and the resolved path when the model is missing', async () => {
    const p = await makeTinyProject();
    const text = (await readFile(p.config, 'utf8')).replace('path: model', 'path: no-such-model');
    await (await import('node:fs/promises')).writeFile(p.config, text);
    const r = await convlens(['report', '--config', p.config]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`convlens: viz.yaml: model.path: no model at "${join(p.dir, 'no-such-model')}"\n  Set model.path to a model.json, a .onnx file, a folder holding one of them, or an http(s) URL.`);
    expect(existsSync(p.outputDir)).toBe(false);
  }, 120_000);

  it('prints help and rejects bad usage', async () => {
    const help = await convlens(['--help']);
    expect(help.code).toBe(0);
    for (const m of METHODS) expect(help.stdout).toContain(m.id);
    const bad = await convlens(['report', '--bogus']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("Unknown option '--bogus'");
    // an unknown command is bad usage too (the help promises 2)
    const unknown = await convlens(['reprot']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown command "reprot"');
    expect(help.stdout).toContain('-c, --config');
  }, 60_000);

});

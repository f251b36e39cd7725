// CI: convlens as a user's dependency. Packs the package, checks what it ships, installs the
// tarball into a fresh project, and runs `convlens init` and `convlens report` (with the site)
// there on a small PyTorch model exported to ONNX (test/fixtures/torch-mini) and generated images.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import sharp from 'sharp';

const root = resolve(import.meta.dirname, '..');
const tmp = await mkdtemp(join(tmpdir(), 'convlens-package-'));
const t0 = performance.now();
const step = (what) => console.log(`package-smoke: ${what} (${((performance.now() - t0) / 1000).toFixed(0)}s)`);
const sh = (cmd, args, cwd) => execFileSync(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8', env: { ...process.env, CI: 'true' } });
try {
  const packed = JSON.parse(sh('npm', ['pack', '--json', '--pack-destination', tmp], root))[0];
  const files = packed.files.map((f) => f.path);
  const stray = files.filter((f) => /^(test|bench|\.ci|models|output|examples)\//.test(f) || f.endsWith('.test.ts'));
  if (stray.length) throw new Error(`the package ships ${stray.length} files it should not: ${stray.slice(0, 5).join(', ')}`);
  for (const need of ['LICENSE', 'bin/convlens.mjs', 'pipeline/cli.ts', 'astro.config.mjs', 'src/pages/index.astro']) {
    if (!files.includes(need)) throw new Error(`the package lacks ${need}`);
  }
  step(`packed ${packed.filename}: ${files.length} files, ${(packed.size / 1024).toFixed(0)} kB`);

  const project = join(tmp, 'project');
  await mkdir(join(project, 'model'), { recursive: true });
  await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'convlens-smoke', private: true, type: 'module' }, null, 2));
  sh('npm', ['install', join(tmp, packed.filename), '--no-audit', '--no-fund', '--prefer-offline'], project);
  step('installed the tarball');

  await copyFile(join(root, 'test/fixtures/torch-mini/model.onnx'), join(project, 'model', 'model.onnx'));
  for (const [c, colour] of [['0', { r: 220, g: 40, b: 40 }], ['1', { r: 40, g: 40, b: 220 }]]) {
    await mkdir(join(project, 'images', c), { recursive: true });
    for (let i = 0; i < 3; i++) {
      await sharp({ create: { width: 24, height: 20, channels: 3, background: { ...colour, g: 40 + 60 * i } } }).png().toFile(join(project, 'images', c, `${i}.png`));
    }
  }
  const bin = join(project, 'node_modules', '.bin', 'convlens');
  sh(bin, ['init', '--model', 'model', '--images', 'images'], project);
  step('convlens init wrote viz.yaml');
  sh(bin, ['report', '--config', 'viz.yaml'], project);
  for (const f of ['output/releases/v1/manifest.json', 'output/releases/v1/summary.html', 'output/site/index.html']) {
    if (!existsSync(join(project, f))) throw new Error(`convlens report wrote no ${f}`);
  }
  step('convlens report built the release and the site');
} finally {
  await rm(tmp, { recursive: true, force: true });
}

import { existsSync } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, dirname, extname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConvlensError } from './errors.ts';
import { writeFileAtomic } from './fs-atomic.ts';
import { IMAGE_EXTENSIONS } from './data.ts';
import type { Logger } from './logger.ts';
import { findCamHead } from './methods/cam.ts';
import type { ModelAdapter } from './model/adapter.ts';
import { classNamesFor, describeHead, headClassCount, type Head } from './model/head.ts';
import { loadModel } from './model/load.ts';

export interface InitOptions {
  /** The model as the user gave it (a folder, a model.json, a .onnx file), relative to the working directory. */
  model: string;
  /** A folder of images: one subfolder per class (ImageFolder), or images directly in it. */
  images?: string;
  /** Where viz.yaml goes (default viz.yaml in the working directory). */
  out: string;
  /** Replace an existing file. */
  force?: boolean;
  logger: Logger;
}

/** The JSON Schema of viz.yaml in this install (editors complete and check keys with it). */
const SCHEMA = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'config', 'viz.schema.json');

/** What the image folder holds. */
interface ImageFolderInfo {
  layout: 'classes' | 'flat';
  /** Class folder names (ImageFolder), in natural order. */
  classes: string[];
  images: number;
}

/**
 * `convlens init`: a commented viz.yaml for a model (and an image folder) that runs as written.
 * The model is loaded to read what the config needs: format, input size and channels, the head,
 * the last spatial layer (Grad-CAM's default) and whether CAM can read the head; a labels file
 * beside the model (labels.txt, classes.txt) is used when its length fits the outputs. The
 * preprocessing keys are all spelled out with the usual values for the format (torchvision's
 * ImageNet normalization for ONNX, pixels / 255 otherwise), marked for the user to check: they
 * cannot be read off a model. Returns the file written.
 */
export async function initConfig(opts: InitOptions): Promise<string> {
  const out = resolve(opts.out);
  if (existsSync(out) && !opts.force) {
    throw new ConvlensError(`${out} exists; convlens init does not overwrite it`, {
      hint: 'Choose another file with --out, or pass --force to replace it.',
    });
  }
  const modelPath = resolve(opts.model);
  const { adapter: model, format } = await loadModel(modelPath).catch((err: unknown) => {
    if (err instanceof ConvlensError) throw new ConvlensError(`--model: ${err.message}`, { hint: err.hint, cause: err });
    throw err;
  });
  try {
    const images = opts.images ? await inspectImages(resolve(opts.images)) : undefined;
    const labels = await findLabels(modelPath, headClassCount(model.head), model.head.kind === 'binary');
    const text = configText({ model, format, modelPath, out, images, imagesPath: opts.images ? resolve(opts.images) : undefined, labels });
    await writeFileAtomic(out, text);
    opts.logger.info(`wrote ${out}: ${format}, input ${model.inputShape.join('x')}, ${headText(model.head, labels?.names)}`);
    if (!images) opts.logger.warn(`no --images: data.samples points at images/ beside ${basename(out)}; put a few images there (or edit the key) before running`);
    opts.logger.info(`check the input block (preprocessing) in ${basename(out)}, then run: npx convlens report --config ${relative(process.cwd(), out) || out}`);
    return out;
  } finally {
    model.dispose();
  }
}

/** The head as the report will describe it, with the class names the run will use. */
function headText(head: Head, labels: readonly string[] | undefined): string {
  const names = classNamesFor(head, labels);
  return describeHead(head, Array.isArray(names) ? names : classNamesFor(head, undefined) as string[]);
}

/** A labels file beside the model whose line count fits the outputs (binary: 1 or 2 names). */
async function findLabels(modelPath: string, classes: number, binary: boolean): Promise<{ path: string; names: string[] } | undefined> {
  const st = await stat(modelPath).catch(() => undefined);
  const dir = st?.isDirectory() ? modelPath : dirname(modelPath);
  for (const name of ['labels.txt', 'classes.txt', 'class_names.txt']) {
    const path = join(dir, name);
    if (!existsSync(path)) continue;
    const names = (await readFile(path, 'utf8')).replace(/^\uFEFF/, '').split(/\r?\n/).map((l) => l.trim());
    while (names.length && names[names.length - 1] === '') names.pop();
    if (names.length === classes || (binary && names.length === 1)) return { path, names };
  }
  return undefined;
}

async function inspectImages(dir: string): Promise<ImageFolderInfo> {
  const st = await stat(dir).catch(() => undefined);
  if (!st?.isDirectory()) {
    throw new ConvlensError(`--images: "${dir}" is not a folder`, {
      hint: 'Give a folder with one subfolder of images per class (ImageFolder), or with images directly in it.',
    });
  }
  const isImage = (n: string) => (IMAGE_EXTENSIONS as readonly string[]).includes(extname(n).toLowerCase());
  const entries = await readdir(dir, { withFileTypes: true });
  const flat = entries.filter((e) => e.isFile() && isImage(e.name)).length;
  const classes: string[] = [];
  let inClasses = 0;
  for (const e of entries.filter((x) => x.isDirectory() && !x.name.startsWith('.'))) {
    const n = (await readdir(join(dir, e.name), { recursive: true })).filter((f) => isImage(String(f))).length;
    if (n > 0) { classes.push(e.name); inClasses += n; }
  }
  classes.sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  if (flat + inClasses === 0) {
    throw new ConvlensError(`--images: no ${IMAGE_EXTENSIONS.join(', ')} images in ${dir} or its subfolders`, {
      hint: 'Point --images at a folder of PNG, JPEG or WebP images.',
    });
  }
  return classes.length > 0 && inClasses >= flat ? { layout: 'classes', classes, images: inClasses } : { layout: 'flat', classes: [], images: flat };
}

/** A path for viz.yaml: relative to the config's folder, with forward slashes, quoted for YAML when needed. */
function yamlPath(target: string, configDir: string): string {
  const rel = relative(configDir, target).split(sep).join('/') || '.';
  return /^[\w./-]+$/.test(rel) ? rel : JSON.stringify(rel);
}

function configText(c: {
  model: ModelAdapter;
  format: string;
  modelPath: string;
  out: string;
  images?: ImageFolderInfo;
  imagesPath?: string;
  labels?: { path: string; names: string[] };
}): string {
  const { model } = c;
  const dir = dirname(c.out);
  const [h, w, ch] = model.inputShape;
  const classes = headClassCount(model.head);
  const onnx = c.format === 'onnx';
  let spatial: string | undefined;
  try {
    spatial = model.lastSpatialLayer().name;
  } catch {
    spatial = undefined;
  }
  const cam = spatial ? findCamHead(model) : undefined;
  const lines: string[] = [
    `# yaml-language-server: $schema=${yamlPath(SCHEMA, dir)}`,
    `# Written by convlens init for ${basename(c.modelPath)}. Every key is described in the convlens README;`,
    '# `npx convlens layers --config <this file>` lists the layer names methods can take.',
    'release: v1',
    'model:',
    `  path: ${yamlPath(c.modelPath, dir)}   # ${c.format}, input ${h}x${w}x${ch}, ${model.countParams().toLocaleString('en-US')} parameters`,
  ];
  if (c.labels) lines.push(`  labels: ${yamlPath(c.labels.path, dir)}   # ${c.labels.names.length} class names, in output order`);
  else lines.push(`  # labels: labels.txt   # one class name per line, in output order (${classes} outputs); without it classes show as indices`);
  lines.push(`  # head: ${headText(model.head, c.labels?.names)}`);
  lines.push(
    '',
    '# Preprocessing: how pixels (0-255, RGB) become the model input, (pixel * scale - mean) / std per',
    '# channel. It cannot be read off the model: CHECK these against how the model was trained.',
    'input:',
    `  size: [${h}, ${w}]   # the model's input size (height, width)`,
    `  channels: ${ch}`,
    `  resize: fill   # fill: stretch; cover: crop to fill; contain: letterbox`,
  );
  if (onnx) {
    lines.push(
      '  channelOrder: rgb',
      '  scale: 0.00392156862745098   # 1/255: pixels to [0, 1]',
      '  mean: [0.485, 0.456, 0.406]   # torchvision\'s ImageNet normalization, what most PyTorch models use',
      '  std: [0.229, 0.224, 0.225]',
    );
  } else {
    lines.push(
      '  channelOrder: rgb   # bgr for Caffe-style models',
      '  scale: 0.00392156862745098   # 1/255: pixels to [0, 1]; 1 if the model rescales its input itself',
      '  mean: [0]   # [1] with scale 1/127.5 for models trained on [-1, 1] (MobileNet, EfficientNetV2)',
      '  std: [1]',
    );
  }
  lines.push('', 'data:');
  if (c.images && c.imagesPath) {
    const p = yamlPath(c.imagesPath, dir);
    lines.push(
      '  samples:   # the images explained one by one',
      `    folder: ${p}`,
      '    limit: 8',
      `  dataset:   # images for dataset-wide views (accuracy, embedding, top patches); ${c.images.images} found`,
      `    folder: ${p}   # ${c.images.layout === 'classes' ? `one subfolder per class: ${c.images.classes.slice(0, 5).join(', ')}${c.images.classes.length > 5 ? ', ...' : ''} (names as in model.labels, or class indices)` : 'images without labels (a subfolder per class adds accuracy)'}`,
      '    limit: 2000',
    );
    if (c.images.layout === 'classes' && c.labels) {
      const unknown = c.images.classes.filter((n) => !c.labels!.names.includes(n) && !/^\d+$/.test(n));
      if (unknown.length) lines.push(`    # NOTE: ${unknown.length} class folder(s) match no class name (${unknown.slice(0, 3).join(', ')}): rename them to class names or indices`);
    }
  } else {
    lines.push('  samples:', '    folder: images   # put the images to explain here (or use files: [a.jpg, b.jpg])', '  # dataset:', '  #   folder: val   # one subfolder of images per class');
  }
  lines.push(
    '',
    'compute:',
    '  backend: auto   # tfjs-node-gpu, tfjs-node, wasm, cpu: the first that loads',
    '',
    'output:',
    '  dir: output   # releases/<release>/ and site/',
    '',
    'methods:',
  );
  if (spatial) lines.push('  grad-cam:', `    layer: ${JSON.stringify(spatial)}   # the last layer with a spatial output (the default)`);
  else lines.push('  # no layer has a spatial output: activations, top patches and the Grad-CAM family are skipped');
  if (cam && !cam.ok) lines.push('  cam:', '    enabled: false   # the head is not global average pooling + one linear layer; Grad-CAM works with any head');
  else if (cam?.ok) lines.push(`  # cam reads the ${cam.head.kind} head`);
  if (!c.images || c.images.layout !== 'classes') lines.push('  # dataset-predictions report accuracy when dataset images have labels');
  return `${lines.join('\n')}\n`;
}

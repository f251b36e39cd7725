/**
 * User-caused conditions get a readable error (what, where, what to do), never "unexpected
 * error ... report it if it looks like a bug": an output.dir that is a file, a full or read-only
 * disk, a model.json holding `null`, a YAML alias bomb.
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../pipeline/backend.ts';
import { ConfigError, parseConfigText } from '../../pipeline/config.ts';
import { ConvlensError, fileSystemError, formatError } from '../../pipeline/errors.ts';
import { silentLogger } from '../../pipeline/logger.ts';
import { readModelArtifacts } from '../../pipeline/model/io.ts';
import { runReport } from '../../pipeline/run.ts';
import { makeTinyProject } from '../helpers/tiny-project.ts';

const errno = (code: string, path: string) => Object.assign(new Error(`${code}: something, open '${path}'`), { code, path });

describe('readable errors for file-system and parse failures', () => {
  beforeAll(async () => { await initBackend('wasm', silentLogger); });

  it('output.dir is a file: names the key, the path, the reason and what to do', async () => {
    const p = await makeTinyProject();
    const file = join(p.dir, 'not-a-folder');
    await writeFile(file, 'x');
    await writeFile(p.config, `release: r\nmodel: { path: model, labels: model/labels.txt }\ndata:\n  samples: { folder: images }\ncompute: { backend: wasm }\noutput: { dir: not-a-folder }\n`);
    const err = await runReport({ configFile: p.config, logger: silentLogger, site: false }).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(ConvlensError);
    expect((err as Error).message).toMatch(/^viz\.yaml: output\.dir: creating the release folder in .*not-a-folder.* failed: (a part of the path is a file, not a folder \(ENOTDIR\)|a file is where a folder should be \(EEXIST\))$/);
    expect(formatError(err)).not.toMatch(/unexpected error/);
  }, 60_000);

  it('a full or read-only disk, or no permission, is explained wherever it happens', () => {
    for (const [code, reason] of [['ENOSPC', 'the disk is full'], ['EROFS', 'the file system is read-only'], ['EACCES', 'permission denied']]) {
      const text = formatError(errno(code, '/out/releases/r/x.png'));
      expect(text, code).toMatch(new RegExp(`^convlens: writing /out/releases/r/x\\.png failed: ${reason} \\(${code}\\)\\n  \\S`));
      expect(fileSystemError(errno(code, '/x'), 'writing', 'viz.yaml: output.dir')?.message).toMatch(/^viz\.yaml: output\.dir: writing \/x failed/);
    }
    expect(fileSystemError(new Error('boom'))).toBeUndefined();
  });

  it('a model.json holding null is not a TensorFlow.js model, said so', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'convlens-null-'));
    await writeFile(join(dir, 'model.json'), 'null');
    await expect(readModelArtifacts(dir)).rejects.toThrow(/is not a TensorFlow\.js model\.json \(no modelTopology or weightsManifest\)/);
  });

  it('a YAML alias bomb is a config error, not a crash', () => {
    const levels = ['a: &a [x, x, x, x, x, x, x, x, x]'];
    for (const [i, n] of ['b', 'c', 'd', 'e', 'f'].entries()) levels.push(`${n}: &${n} [${Array(9).fill(`*${'abcdef'[i]}`).join(', ')}]`);
    let err: unknown;
    try { parseConfigText(levels.join('\n'), '/tmp/viz.yaml'); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(/^viz\.yaml: \(top level\): YAML aliases expand too much/);
  });
});

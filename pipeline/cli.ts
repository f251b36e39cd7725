import { parseArgs } from 'node:util';
import { join, resolve } from 'node:path';
import { configJsonSchema } from './config.ts';
import { formatError } from './errors.ts';
import { installSignalHandlers } from './interrupt.ts';
import { writeFileAtomic } from './fs-atomic.ts';
import { ConsoleLogger, type Logger } from './logger.ts';
import { METHOD_IDS } from './methods/registry.ts';
import { initBackend } from './backend.ts';
import { initConfig } from './init.ts';
import { previewSite } from './preview.ts';
import { loadForReport, runReport, toolVersion } from './run.ts';

const HELP = `convlens: CNN interpretability reports for TensorFlow.js models

Usage:
  convlens report [--config FILE] [--release NAME] [--base PATH] [--no-site] [--wait] [--debug]
      Compute every enabled method for the config and build the static site.
      -c, --config   viz.yaml to use (default: config/viz.yaml)
      -r, --release  release name (default: "release" in the config, or env CONVLENS_RELEASE)
      --base         site base path, e.g. /REPO/ for GitHub Pages (default: site.base, or env CONVLENS_BASE)
      --no-site      write the release only; skip the site build
      --wait         if another run is writing the same output folder, wait for it (default: fail)
  convlens preview [-c FILE] [--port N] [--base PATH]
      Serve the site the config's runs build (<output.dir>/site) on http://127.0.0.1:N (default 4321;
      0 picks a free port) under its base, until Ctrl+C.
  convlens init --model PATH [--images DIR] [--out FILE] [--force]
      Write a commented viz.yaml (default ./viz.yaml) for a model (folder, model.json or .onnx) and
      an image folder (one subfolder per class, or images directly in it) that runs as written;
      check its input block (preprocessing) before the first report.
  convlens layers [-c FILE]
      List the model's layers (names to use in viz.yaml).
  convlens schema [-o FILE]
      Print (or write, -o/--out) the JSON Schema of viz.yaml, for editor autocompletion.
  convlens -h | --help, convlens -v | --version
  --debug (any command): debug log lines, and the stack of a failure.

Methods (viz.yaml: methods.<id>): ${METHOD_IDS.join(', ')}
Exit status: 0 on success, 1 on any failure (one message; the stack only with --debug), 2 on bad usage.`;

export async function main(argv: string[], logger?: Logger): Promise<number> {
  let args: ReturnType<typeof parse>;
  try {
    args = parse(argv);
  } catch (err) {
    process.stderr.write(`convlens: ${(err as Error).message}\n  Run \`convlens --help\` for usage.\n`);
    return 2;
  }
  const { values, positionals } = args;
  const debug = Boolean(values.debug);
  const log = logger ?? new ConsoleLogger({ debug });
  if (values.help) { process.stdout.write(`${HELP}\n`); return 0; }
  if (values.version) { process.stdout.write(`${await toolVersion()}\n`); return 0; }
  const command = positionals[0];
  const configFile = values.config ?? 'config/viz.yaml';
  try {
    switch (command) {
      case 'report': {
        installSignalHandlers(log);
        const result = await runReport({
          configFile,
          release: values.release ?? process.env.CONVLENS_RELEASE ?? undefined,
          base: values.base ?? process.env.CONVLENS_BASE ?? undefined,
          site: !values['no-site'],
          wait: Boolean(values.wait),
          logger: log,
        });
        if (result.siteDir) log.info(`done: open ${join(result.siteDir, 'index.html')}, or serve it with \`npx convlens preview --config ${configFile}\``);
        return 0;
      }
      case 'preview': {
        const port = values.port === undefined ? undefined : Number(values.port);
        if (port !== undefined && (!Number.isInteger(port) || port < 0 || port > 65535)) {
          process.stderr.write(`convlens: --port must be a whole number from 0 to 65535 (got "${values.port}")\n`);
          return 2;
        }
        const server = await previewSite(configFile, { port, base: values.base ?? process.env.CONVLENS_BASE ?? undefined, logger: log });
        await new Promise<void>((stop) => {
          process.once('SIGINT', () => stop());
          process.once('SIGTERM', () => stop());
        });
        await server.close();
        return 0;
      }
      case 'init': {
        if (!values.model) {
          process.stderr.write('convlens: init needs --model PATH (a model folder, model.json or .onnx file)\n  Run `convlens --help` for usage.\n');
          return 2;
        }
        await initBackend('auto', log);
        await initConfig({ model: values.model, images: values.images, out: values.out ?? 'viz.yaml', force: Boolean(values.force), logger: log });
        return 0;
      }
      case 'layers': {
        // loading only: a method option naming a wrong layer must not stop the command that lists them
        const { model } = await loadForReport(configFile, log);
        process.stdout.write(layerTable(model.layers));
        model.dispose();
        return 0;
      }
      case 'schema': {
        const text = `${JSON.stringify(configJsonSchema(), null, 2)}\n`;
        if (values.out) await writeFileAtomic(resolve(values.out), text);
        else process.stdout.write(text);
        return 0;
      }
      case undefined:
        process.stdout.write(`${HELP}\n`);
        return 2;
      default:
        process.stderr.write(`convlens: unknown command "${command}"\n  Commands: report, init, preview, layers, schema. Run \`convlens --help\` for usage.\n`);
        return 2;
    }
  } catch (err) {
    process.stderr.write(`${formatError(err, debug)}\n`);
    return 1;
  }
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string', short: 'c' },
      release: { type: 'string', short: 'r' },
      base: { type: 'string' },
      out: { type: 'string', short: 'o' },
      port: { type: 'string' },
      model: { type: 'string', short: 'm' },
      images: { type: 'string', short: 'i' },
      force: { type: 'boolean' },
      'no-site': { type: 'boolean' },
      wait: { type: 'boolean' },
      debug: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean', short: 'v' },
    },
  });
}

/**
 * `convlens layers`: name, type, output shape and parameters in aligned columns. Names longer than
 * NAME_WIDTH (graph node paths such as `StatefulPartitionedCall/model/block_1_expand/Conv2D`) get
 * a line of their own, with the other columns indented below, so the columns stay readable.
 */
export function layerTable(layers: readonly { name: string; type: string; outputShape: readonly (number | null)[]; params: number }[]): string {
  const NAME_WIDTH = 40;
  const nameWidth = Math.min(NAME_WIDTH, Math.max(5, ...layers.map((l) => l.name.length)));
  const typeWidth = Math.max(4, ...layers.map((l) => l.type.length));
  const shape = (l: { outputShape: readonly (number | null)[] }) => `[${l.outputShape.map((d) => d ?? '?').join(', ')}]`;
  const shapeWidth = Math.max(12, ...layers.map((l) => shape(l).length));
  const row = (name: string, type: string, sh: string, params: string) => `${name.padEnd(nameWidth)}  ${type.padEnd(typeWidth)}  ${sh.padEnd(shapeWidth)}  ${params.padStart(10)}`.trimEnd();
  const lines = [row('layer', 'type', 'output shape', 'parameters')];
  for (const l of layers) {
    const params = l.params.toLocaleString('en-US');
    if (l.name.length > nameWidth) lines.push(l.name, row('', l.type, shape(l), params));
    else lines.push(row(l.name, l.type, shape(l), params));
  }
  return `${lines.join('\n')}\n`;
}

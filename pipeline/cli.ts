import { parseArgs } from 'node:util';
import { join, resolve } from 'node:path';
import { configJsonSchema } from './config.ts';
import { formatError } from './errors.ts';
import { installSignalHandlers } from './interrupt.ts';
import { writeFileAtomic } from './fs-atomic.ts';
import { ConsoleLogger, type Logger } from './logger.ts';
import { METHOD_IDS } from './methods/registry.ts';
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
      case 'layers': {
        // loading only: a method option naming a wrong layer must not stop the command that lists them
        const { model } = await loadForReport(configFile, log);
        for (const l of model.layers) {
          process.stdout.write(`${l.name.padEnd(32)} ${l.type.padEnd(24)} [${l.outputShape.map((d) => d ?? '?').join(', ')}] ${l.params}\n`);
        }
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
        process.stderr.write(`convlens: unknown command "${command}"\n  Commands: report, preview, layers, schema. Run \`convlens --help\` for usage.\n`);
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
      'no-site': { type: 'boolean' },
      wait: { type: 'boolean' },
      debug: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean', short: 'v' },
    },
  });
}

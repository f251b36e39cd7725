import { createReadStream, existsSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { basename, extname, join, resolve, sep } from 'node:path';
import { loadConfig, resolveFromConfig } from './config.ts';
import { ConvlensError } from './errors.ts';
import type { Logger } from './logger.ts';
import { normalizeBase } from './site.ts';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.png': 'image/png',
  '.webp': 'image/webp',
  '.jpg': 'image/jpeg',
  '.svg': 'image/svg+xml',
  '.md': 'text/markdown; charset=utf-8',
  '.npy': 'application/octet-stream',
};

export interface StaticServer {
  /** `http://127.0.0.1:<port><base>` */
  url: string;
  close(): Promise<void>;
}

/**
 * Serves `root` under the URL path `base` (e.g. `/convlens-demo/`) on 127.0.0.1, as GitHub Pages
 * would: folders answer with their index.html, anything outside the base or the folder is 404.
 * Port 0 picks a free port.
 */
export async function serveStatic(root: string, base: string, port = 0): Promise<StaticServer> {
  const dir = resolve(root);
  const server: Server = createServer(async (req, res) => {
    try {
      const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
      if (!path.startsWith(base)) throw new Error('outside base');
      let file = resolve(dir, '.' + sep + path.slice(base.length));
      if (file !== dir && !file.startsWith(dir + sep)) throw new Error('outside root');
      let st = await stat(file);
      if (st.isDirectory()) {
        if (!path.endsWith('/')) {
          res.writeHead(301, { location: `${path}/` }).end();
          return;
        }
        file = join(file, 'index.html');
        st = await stat(file);
      }
      res.writeHead(200, { 'content-type': TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream', 'content-length': st.size });
      if (req.method === 'HEAD') res.end();
      else createReadStream(file).pipe(res);
    } catch {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
    }
  });
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(port, '127.0.0.1', ok);
  });
  const bound = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${bound}${base}`,
    close: () => new Promise<void>((ok) => { server.close(() => ok()); server.closeAllConnections(); }),
  };
}

/**
 * The site a config's runs build (`<output.dir>/site`), served under its base as GitHub Pages
 * would serve it, until the process is stopped.
 */
export async function previewSite(configFile: string, opts: { port?: number; base?: string; logger: Logger }): Promise<StaticServer> {
  const loaded = await loadConfig(configFile);
  const label = basename(loaded.file);
  const siteDir = join(resolveFromConfig(loaded, loaded.config.output.dir), 'site');
  if (!existsSync(join(siteDir, 'index.html'))) {
    throw new ConvlensError(`${label}: output.dir: no site in ${siteDir}`, {
      hint: `Build it first: convlens report --config ${configFile}`,
    });
  }
  const base = normalizeBase(opts.base ?? loaded.config.site.base);
  let server: StaticServer;
  try {
    server = await serveStatic(siteDir, base, opts.port ?? 4321);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new ConvlensError(`cannot serve the site on port ${opts.port ?? 4321}: ${e.code === 'EADDRINUSE' ? 'the port is in use' : e.message}`, {
      hint: 'Stop what uses it, or choose another port with --port (0 picks a free one).',
      cause: err,
    });
  }
  opts.logger.info(`preview: ${siteDir} at ${server.url} (Ctrl+C to stop)`);
  return server;
}

// Shared helpers for footfall's browser tests: a real server binary, a real Chromium
// (driven by playwright-core), and small fixture page servers.
//
//   FOOTFALL_BIN      the server binary (default $HOME/.cache/footfall-target/release/footfall)
//   FOOTFALL_WEB_DIR  serve tracker and dashboard from this folder instead of the embedded copy
//   CHROMIUM          the browser (default /usr/bin/chromium)
//   FOOTFALL_TEST_LOG=1  echo server logs to stderr as they arrive

import { spawn, execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';

const run = promisify(execFile);

export const FOOTFALL_BIN =
  process.env.FOOTFALL_BIN || join(homedir(), '.cache/footfall-target/release/footfall');

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

/** A desktop Chrome user agent: the server drops "HeadlessChrome" as a bot. */
export const CHROME_UA =
  'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';

function requireBin() {
  if (!existsSync(FOOTFALL_BIN)) {
    throw new Error(
      `footfall binary not found at ${FOOTFALL_BIN}: build it with ` +
        '`CARGO_TARGET_DIR=$HOME/.cache/footfall-target cargo build --release -p footfall` ' +
        'or point FOOTFALL_BIN at it',
    );
  }
}

// Servers still running when the test process ends are killed with it.
const running = new Set();
function killAll() {
  for (const child of running) {
    try {
      child.kill('SIGKILL');
    } catch {}
  }
}
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, () => {
    killAll();
    process.exit(130);
  });
}

/**
 * Starts `footfall serve` on a free port with a fresh data directory.
 *
 * sites / publicSites: registered offline with `footfall sites add` before start.
 * users: [{username, password}] added offline with `footfall users add`.
 * extraArgs: more `serve` flags, e.g. ['--dedup-window-secs', '0'].
 * webDir: serve web files from this folder (also env FOOTFALL_WEB_DIR).
 * listen: the address to listen on (default a free port); dataDir: reuse a data directory
 * (e.g. of a stopped server, to restart it).
 */
export async function startServer({
  sites = [],
  publicSites = [],
  users = [],
  demo = false,
  extraArgs = [],
  webDir = process.env.FOOTFALL_WEB_DIR,
  listen = '127.0.0.1:0',
  dataDir = mkdtempSync(join(tmpdir(), 'footfall-browser-')),
} = {}) {
  requireBin();
  const adminToken = randomBytes(16).toString('hex');
  const offline = async (args) => {
    try {
      await run(FOOTFALL_BIN, args, { timeout: 30_000 });
    } catch (e) {
      throw new Error(`footfall ${args.join(' ')} failed: ${e.stderr || e.message}`);
    }
  };
  for (const domain of sites) await offline(['sites', 'add', domain, '--data-dir', dataDir]);
  for (const domain of publicSites) {
    await offline(['sites', 'add', domain, '--data-dir', dataDir, '--public']);
  }
  for (const { username, password } of users) {
    await offline(['users', 'add', '--data-dir', dataDir, '--username', username, '--password', password]);
  }

  const args = ['serve', '--listen', listen, '--data-dir', dataDir, '--admin-token', adminToken];
  if (webDir) args.push('--web-dir', webDir);
  if (demo) args.push('--demo');
  args.push(...extraArgs);

  const child = spawn(FOOTFALL_BIN, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'info', NO_COLOR: '1' },
  });
  running.add(child);
  let text = '';
  let exit = null; // {code, signal} once exited
  const waiters = new Set();
  const onData = (chunk) => {
    text += chunk.toString();
    if (process.env.FOOTFALL_TEST_LOG) process.stderr.write(chunk);
    for (const w of waiters) w();
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      running.delete(child);
      exit = { code, signal };
      for (const w of waiters) w();
      resolve();
    });
  });
  // eslint-disable-next-line no-control-regex
  const log = () => text.replace(/\x1b\[[0-9;]*m/g, '');

  /** Resolves with the first match of `re` in the log (now or later). */
  const waitForLog = (re, timeoutMs = 10_000) =>
    new Promise((resolve, reject) => {
      const done = (f) => {
        clearTimeout(timer);
        waiters.delete(check);
        f();
      };
      const check = () => {
        const m = log().match(re);
        if (m) return done(() => resolve(m));
        if (exit) {
          done(() => reject(new Error(`footfall exited (${exit.code ?? exit.signal}) before logging ${re}:\n${log()}`)));
        }
      };
      const timer = setTimeout(
        () => done(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${re} in the server log:\n${log()}`))),
        timeoutMs,
      );
      waiters.add(check);
      check();
    });

  /** SIGTERM and wait; the data directory is removed unless `keepData` (to restart on it). */
  const stop = async ({ keepData = false } = {}) => {
    if (!exit) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    }
    if (!keepData) rmSync(dataDir, { recursive: true, force: true });
  };

  let url;
  try {
    const m = await waitForLog(/footfall listening addr=(\S+)/, 30_000);
    url = `http://${m[1]}`;
    await waitFor(
      async () => {
        try {
          return (await fetch(`${url}/healthz`)).ok;
        } catch {
          return false;
        }
      },
      { timeout: 10_000, message: 'GET /healthz never answered ok' },
    );
  } catch (e) {
    await stop().catch(() => {});
    throw e;
  }
  return { url, port: Number(new URL(url).port), adminToken, dataDir, process: child, log, waitForLog, stop };
}

/** Launches the system Chromium headless. */
export async function launchBrowser(opts = {}) {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`Chromium not found at ${CHROMIUM}: install it (apt-get install -y chromium) or set CHROMIUM`);
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-quic',
      '--no-first-run',
      '--disable-component-update',
      '--disable-sync',
      '--host-resolver-rules=MAP *.test 127.0.0.1, MAP *.example 127.0.0.1',
      // The default for requests that outlive their page (keepalive fetches sent while a
      // page unloads), which don't get the context's user agent: HeadlessChrome is a bot.
      `--user-agent=${CHROME_UA}`,
    ],
    ...opts,
  });
}

/** A browser context with a normal desktop Chrome user agent (unless opts say otherwise). */
export async function newContext(browser, opts = {}) {
  return browser.newContext({ userAgent: CHROME_UA, ...opts });
}

/**
 * A tiny HTTP server on 127.0.0.1:0 for fixture pages.
 *
 * routes: { '/path': {body, type?, status?, headers?} | (req) => that }. A request whose
 * path has no route gets `fallback` (e.g. routes['/'] for an SPA) or a 404.
 * Every request is recorded in `requests` as {method, host, path, headers}.
 */
export async function startPageServer(routes = {}, { fallback } = {}) {
  const requests = [];
  const srv = createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    requests.push({ method: req.method, host: req.headers.host, path: url.pathname + url.search, headers: req.headers });
    let route = routes[url.pathname] ?? fallback;
    if (typeof route === 'function') route = route(req, url);
    if (typeof route === 'string') route = routes[route];
    if (!route) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      return res.end('not found');
    }
    res.writeHead(route.status || 200, {
      'content-type': route.type || 'text/html; charset=utf-8',
      'cache-control': 'no-store',
      ...(route.headers || {}),
    });
    res.end(route.body ?? '');
  });
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = srv.address().port;
  return {
    port,
    requests,
    /** http://HOST:PORT/PATH, e.g. url('shop.test', '/pricing') */
    url: (host = '127.0.0.1', path = '/') => `http://${host}:${port}${path}`,
    stop: () =>
      new Promise((resolve) => {
        srv.closeAllConnections?.();
        srv.close(() => resolve());
      }),
  };
}

/**
 * Polls `fn` (sync or async) until it returns a truthy value, and resolves with it.
 * On timeout, throws with `message` and the last value (or error) seen.
 */
export async function waitFor(fn, { timeout = 10_000, interval = 50, message = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  let lastError;
  for (;;) {
    try {
      last = await fn();
      lastError = undefined;
      if (last) return last;
    } catch (e) {
      lastError = e;
    }
    if (Date.now() >= deadline) {
      const seen = lastError ? `last error: ${lastError.stack || lastError}` : `last value: ${safeJson(last)}`;
      throw new Error(`waitFor timed out after ${timeout} ms: ${message}; ${seen}`);
    }
    await new Promise((r) => setTimeout(r, interval));
  }
}

function safeJson(v) {
  try {
    return JSON.stringify(v);
  } catch {
    return String(v);
  }
}

async function api(server, path, init = {}) {
  const res = await fetch(server.url + path, {
    ...init,
    headers: {
      authorization: `Bearer ${server.adminToken}`,
      ...(init.body ? { 'content-type': 'application/json' } : {}),
      ...(init.headers || {}),
    },
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${init.method || 'GET'} ${path} -> ${res.status}: ${text}`);
  return text ? JSON.parse(text) : null;
}

/** POST /api/v2/query with the admin token; `body` is the query object. */
export async function adminQuery(server, body) {
  return api(server, '/api/v2/query', { method: 'POST', body: JSON.stringify(body) });
}

/** GET /api/stats/{site}/live with the admin token. */
export async function live(server, site, { limit } = {}) {
  return api(server, `/api/stats/${encodeURIComponent(site)}/live${limit ? `?limit=${limit}` : ''}`);
}

/** POST `body` (an object) to `path` with the admin token. */
export async function adminPost(server, path, body) {
  return api(server, path, { method: 'POST', body: JSON.stringify(body) });
}

/** GET `path` with the admin token: its JSON. */
export async function adminGet(server, path) {
  return api(server, path);
}

/** PUT `body` (an object) to `path` with the admin token. */
export async function adminPut(server, path, body) {
  return api(server, path, { method: 'PUT', body: JSON.stringify(body) });
}

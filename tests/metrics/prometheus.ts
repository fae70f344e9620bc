/**
 * A real Prometheus (Debian's `prometheus`, installed by scripts/install-test-deps.sh) for the
 * metrics tests: started on a free loopback port with a temporary data folder, scraping one
 * target every second, queried through its HTTP API. Its own `/-/ready` says when it runs.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Prometheus {
  readonly url: string;
  /** The value of an instant PromQL query's first sample, or undefined when it has none. */
  query(promql: string): Promise<number | undefined>;
  /** Polls `promql` until `accept` holds (or `timeoutMs`); returns the last value seen. */
  waitFor(promql: string, accept: (v: number | undefined) => boolean, timeoutMs?: number): Promise<number | undefined>;
  /** The state of the scrape target as Prometheus sees it (`up`, `down`, `unknown`) and its last error. */
  target(): Promise<{ health: string; lastError: string } | undefined>;
  output(): string;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Starts Prometheus scraping `target` (host:port) at `/metrics`, with a bearer token when given. */
export async function startPrometheus(target: string, options: { token?: string } = {}): Promise<Prometheus> {
  const dir = mkdtempSync(join(tmpdir(), 'nat-prometheus-'));
  const port = await freePort();
  const auth = options.token === undefined ? '' : `    authorization:\n      credentials: '${options.token}'\n`;
  writeFileSync(
    join(dir, 'prometheus.yml'),
    `global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: nat\n    metrics_path: /metrics\n${auth}    static_configs:\n      - targets: ['${target}']\n`,
  );
  let out = '';
  const child: ChildProcess = spawn(
    'prometheus',
    [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const url = `http://127.0.0.1:${port}`;
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`prometheus exited with ${child.exitCode} before it was ready:\n${out}`);
    }
    const ready = await fetch(`${url}/-/ready`).then(
      (r) => r.ok,
      () => false,
    );
    if (ready) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`prometheus not ready on ${url} within 30 s:\n${out}`);
    }
    await sleep(200);
  }
  const query = async (promql: string): Promise<number | undefined> => {
    const r = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(promql)}`);
    const body = (await r.json()) as { status: string; error?: string; data?: { result: { value: [number, string] }[] } };
    if (body.status !== 'success') throw new Error(`PromQL ${promql}: ${body.error ?? r.status}`);
    const v = body.data?.result[0]?.value[1];
    return v === undefined ? undefined : Number(v);
  };
  return {
    url,
    query,
    async waitFor(promql, accept, timeoutMs = 30_000) {
      const end = Date.now() + timeoutMs;
      let v = await query(promql);
      while (!accept(v) && Date.now() < end) {
        await sleep(500);
        v = await query(promql);
      }
      return v;
    },
    async target() {
      const r = await fetch(`${url}/api/v1/targets`);
      const body = (await r.json()) as { data: { activeTargets: { health: string; lastError: string }[] } };
      return body.data.activeTargets[0];
    },
    output: () => out,
    stop,
  };
}

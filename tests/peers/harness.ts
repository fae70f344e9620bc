/**
 * In-process `nat` and `nat-server` runs for the peer suites, each stopped and awaited when the
 * suite ends: `start` runs `nat ARGS` until its `stop` is aborted (or it ends by itself),
 * `startServer` runs a TURN + rendezvous `nat-server` on one loopback address.
 */
import { createSocket } from 'node:dgram';
import { runCli } from '@nat/cli';
import { run as runServer, type RunningServer } from '@nat/server-app';
import { capture } from '../tunnel/helpers.js';

export class PeerRuns {
  readonly #stops: AbortController[] = [];
  readonly #runs: Promise<number>[] = [];
  readonly #servers: Array<{ stop(): Promise<void> }> = [];

  /** `nat ARGS` in-process until `stop` (or it ends by itself). */
  start(args: string[]) {
    const io = capture();
    const stop = new AbortController();
    this.#stops.push(stop);
    const done = runCli(args, io.io, stop.signal);
    this.#runs.push(done);
    return { ...io, stop, done };
  }

  /** Something to stop when the suite ends (e.g. a rendezvous started directly). */
  keep(server: { stop(): Promise<void> }): void {
    this.#servers.push(server);
  }

  /**
   * `nat-server --listen HOST --realm example.org --rendezvous-port 0 ...extra` (UDP only, on a
   * free port of HOST); resolves with the rendezvous URL and the server.
   */
  async startServer(host: string, extra: string[]): Promise<{ url: string; server: RunningServer }> {
    const io = capture();
    const server = (await runServer([...(await serverArgs(host)), ...extra], io.io))!;
    this.#servers.push(server);
    return { url: /rendezvous (ws:\S+)/.exec(io.err())![1]!, server };
  }

  /** Stops every run (abort, then awaited) and every server. */
  async close(): Promise<void> {
    for (const s of this.#stops) s.abort();
    await Promise.allSettled(this.#runs);
    await Promise.allSettled(this.#servers.map((s) => s.stop()));
  }
}

/**
 * The `nat-server` flags of {@link PeerRuns.startServer} (UDP only on a free port of `host`, the
 * rendezvous on a free TCP port, no log), for the suites that start the binary themselves.
 */
export async function serverArgs(host: string): Promise<string[]> {
  const port = await freeUdpPort(host);
  return ['--listen', host, '--port', String(port), '--no-alt-port', '--no-tcp', '--realm', 'example.org', '--rendezvous-port', '0', '--log-level', 'silent'];
}

async function freeUdpPort(host: string): Promise<number> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, host, r));
  const { port } = s.address();
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/**
 * The TURN side of one node's capacity (`pnpm bench:cluster -- --modes turn`): a fresh nat-server
 * (one process, a realm, one static user) and K allocations made in this process with
 * @nat/client's TurnClient, each with a channel bound to a peer on 127.0.0.1 (what a relayed
 * session holds). Memory per allocation = (the node's RSS with K allocations - before) / K.
 *
 * The node's per-user quota and total are raised to K (`--user-quota K --total-quota K`), since
 * one user makes them all; the per-source share stays at its default: the clients are spread
 * over loopback source addresses 127.200.X.Y, --per-source each (at most 64, the default share).
 */
import { performance } from 'node:perf_hooks';
import { TurnClient } from '../../packages/client/dist/index.js';
import { LISTEN_IP, ROOT, alive, sleep, start, stop, waitForStun, freePort } from '../harness.js';
import { rssOf } from './nodes.js';

export interface TurnResult {
  allocations: number;
  failed: number;
  firstError: string | undefined;
  seconds: number;
  /** (RSS with the allocations - before) / allocations, bytes. */
  rssPerAllocation: number;
  rssBefore: number;
  rssAfter: number;
}

const PASSWORD = 'bench-capacity';

export async function runTurnMode(count: number, perSource: number): Promise<TurnResult> {
  const port = await freePort();
  const args = ['--listen', LISTEN_IP, '--port', String(port), '--no-alt-port', '--no-tcp', '--workers', '1', '--log-level', 'warn', '--realm', 'bench'];
  args.push('--user', `bench:${PASSWORD}`, '--user-quota', String(count), '--total-quota', String(count), '--allow-peer', '127.0.0.0/8', '--rate-limit', '0');
  const node = start(process.execPath, [`${ROOT}/apps/server/dist/main.js`, ...args]);
  const clients: TurnClient[] = [];
  try {
    await waitForStun(port, node, 'nat-server (TURN)', 30_000);
    await sleep(500);
    const rssBefore = rssOf(node.child.pid!);
    const sources = Math.ceil(count / perSource);
    let next = 0;
    let failed = 0;
    let firstError: string | undefined;
    const t0 = performance.now();
    const worker = async (): Promise<void> => {
      while (next < count && alive(node)) {
        const i = next++;
        const s = i % sources;
        try {
          const c = await TurnClient.connect({
            server: { family: 'IPv4', address: LISTEN_IP, port },
            localAddress: `127.200.${Math.floor(s / 250)}.${1 + (s % 250)}`,
            username: 'bench',
            password: PASSWORD,
            transport: 'udp',
            signal: AbortSignal.timeout(20_000),
          });
          clients.push(c);
          await c.bindChannel({ family: 'IPv4', address: LISTEN_IP, port: 9 }, { signal: AbortSignal.timeout(20_000) });
        } catch (e) {
          failed++;
          firstError ??= (e as Error).message;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(64, count) }, worker));
    const seconds = (performance.now() - t0) / 1000;
    if (!alive(node)) throw new Error(`nat-server exited while allocating:\n${node.output()}`);
    const rssAfter = rssOf(node.child.pid!);
    return {
      allocations: clients.length,
      failed,
      firstError,
      seconds,
      rssPerAllocation: (rssAfter - rssBefore) / Math.max(1, clients.length),
      rssBefore,
      rssAfter,
    };
  } finally {
    await Promise.all(clients.map((c) => c.close({ signal: AbortSignal.timeout(5000) }).catch(() => undefined)));
    await stop(node);
  }
}

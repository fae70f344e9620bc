/**
 * The primary's side of `nat-server --workers N`: forks the workers, restarts one that dies
 * (logged, with its exit code or signal), tells every worker where the others' TURN ports are,
 * relays relay-scope writes between them, and gathers their events and counters.
 */
import cluster, { type Worker } from 'node:cluster';
import type { TransportAddress } from '@nat/protocol';
import type { ServerEvent, ServerEventSink, StunListener } from '@nat/server';
import type { Logger } from 'pino';
import { type PrimaryMessage, type WorkerStart, type ScopeEntry, WORKER_ENV, type WorkerMessage, type WorkerStats } from './ipc.js';

/** Allocation numbers are per worker: the primary tells them apart as `id * ID_STRIDE + worker`. */
const ID_STRIDE = 256;
/** A worker that died is started again after this long. */
const RESTART_DELAY_MS = 500;

/** One worker slot: the process now in it and what it reported. */
export interface WorkerSlot {
  readonly id: number;
  worker: Worker | undefined;
  ready: boolean;
  shared: readonly StunListener[];
  own: readonly StunListener[];
  stats: WorkerStats | undefined;
  restarts: number;
  /** Allocations it reported created and not ended (ended for it when it dies). */
  readonly allocations: Map<number, { user: string; relay: 'udp' | 'tcp' }>;
}

export interface WorkerPoolInit {
  readonly count: number;
  readonly exec: string;
  readonly args: readonly string[];
  readonly start: WorkerStart;
  readonly logger: Logger;
  readonly events: ServerEventSink;
  /** A worker wrote to the relay scope (the pool sends it to the other workers itself). */
  readonly onScope: (entry: ScopeEntry) => void;
  /** Told about restarts (stderr). */
  readonly say: (line: string) => void;
}

export class WorkerPool {
  readonly slots: WorkerSlot[];
  readonly #init: WorkerPoolInit;
  readonly #services: TransportAddress[] = [];
  readonly #reloads = new Map<number, (r: { ok: boolean; text: string }) => void>();
  #stopping = false;
  #firstFailure: ((why: string) => void) | undefined;

  constructor(init: WorkerPoolInit) {
    this.#init = init;
    this.slots = Array.from({ length: init.count }, (_, id) => ({
      id,
      worker: undefined,
      ready: false,
      shared: [],
      own: [],
      stats: undefined,
      restarts: 0,
      allocations: new Map(),
    }));
  }

  /** Forks every worker; resolves when all are ready, rejects (after stopping them) when one exits first. */
  async start(timeoutMs = 60_000): Promise<void> {
    cluster.setupPrimary({ exec: this.#init.exec, args: [...this.#init.args], silent: false });
    const ready = new Promise<void>((resolve, reject) => {
      const check = setInterval(() => {
        if (this.slots.every((s) => s.ready)) {
          clearInterval(check);
          this.#firstFailure = undefined;
          resolve();
        }
      }, 20);
      this.#firstFailure = (why) => {
        clearInterval(check);
        reject(new Error(why));
      };
      setTimeout(() => {
        clearInterval(check);
        reject(new Error(`the workers were not ready within ${timeoutMs / 1000} s`));
      }, timeoutMs).unref();
    });
    for (const slot of this.slots) this.#fork(slot);
    try {
      await ready;
    } catch (e) {
      await this.stop();
      throw e;
    }
  }

  /** Addresses no relay may reach besides the workers' own (the rendezvous). */
  addServices(addresses: readonly TransportAddress[]): void {
    this.#services.push(...addresses);
    this.#broadcastPorts();
  }

  send(m: PrimaryMessage, except?: number): void {
    for (const s of this.slots) if (s.id !== except && s.ready && s.worker?.isConnected()) s.worker.send(m);
  }

  /** Asks every live worker to reload; resolves to each one's answer. */
  async reload(timeoutMs = 15_000): Promise<string[]> {
    const live = this.slots.filter((s) => s.ready && s.worker?.isConnected());
    const answers = live.map(
      (s) =>
        new Promise<string>((resolve) => {
          const timer = setTimeout(() => resolve(`worker ${s.id}: no answer within ${timeoutMs / 1000} s`), timeoutMs);
          this.#reloads.set(s.id, (r) => {
            clearTimeout(timer);
            resolve(`worker ${s.id}: ${r.ok ? 'reloaded' : `refused: ${r.text}`}`);
          });
          s.worker!.send({ t: 'reload' } satisfies PrimaryMessage);
        }),
    );
    return Promise.all(answers);
  }

  /** Stops every worker (a `stop` message, then SIGKILL for one still there after `timeoutMs`). */
  async stop(timeoutMs = 10_000): Promise<void> {
    this.#stopping = true;
    const alive = this.slots.map((s) => s.worker).filter((w): w is Worker => w !== undefined && !w.isDead());
    await Promise.all(
      alive.map(
        (w) =>
          new Promise<void>((resolve) => {
            const kill = setTimeout(() => w.process.kill('SIGKILL'), timeoutMs);
            w.once('exit', () => {
              clearTimeout(kill);
              resolve();
            });
            if (w.isConnected()) w.send({ t: 'stop' } satisfies PrimaryMessage);
            else w.process.kill('SIGTERM');
          }),
      ),
    );
  }

  #fork(slot: WorkerSlot): void {
    const env = {
      [WORKER_ENV.id]: String(slot.id),
      [WORKER_ENV.count]: String(this.#init.count),
      [WORKER_ENV.ports]: JSON.stringify(this.#init.start.ports),
      [WORKER_ENV.nonce]: this.#init.start.nonceKey,
    };
    const worker = cluster.fork(env);
    slot.worker = worker;
    slot.ready = false;
    worker.on('message', (m: WorkerMessage) => this.#onMessage(slot, m));
    worker.on('exit', (code, signal) => this.#onExit(slot, worker, code, signal));
  }

  #onMessage(slot: WorkerSlot, m: WorkerMessage): void {
    switch (m.t) {
      case 'event':
        return this.#onEvent(slot, m.e);
      case 'stats':
        slot.stats = m.stats;
        return;
      case 'scope':
        this.#init.onScope(m);
        return this.send(m, slot.id);
      case 'reloaded':
        this.#reloads.get(slot.id)?.(m);
        this.#reloads.delete(slot.id);
        return;
      case 'ready':
        slot.shared = m.shared;
        slot.own = m.own;
        slot.ready = true;
        if (slot.restarts > 0) this.#init.say(`worker ${slot.id} (pid ${slot.worker?.process.pid}) restarted: TURN allocations on ${describe(m.own)}`);
        return this.#broadcastPorts();
    }
  }

  /** Worker events into the primary's sink, their allocation numbers made unique across workers. */
  #onEvent(slot: WorkerSlot, e: ServerEvent): void {
    if (e.type === 'allocation-created') slot.allocations.set(e.allocation, { user: e.user, relay: e.relay });
    if (e.type === 'allocation-ended') slot.allocations.delete(e.allocation);
    if ('allocation' in e && typeof e.allocation === 'number') this.#init.events({ ...e, allocation: e.allocation * ID_STRIDE + slot.id } as ServerEvent);
    else this.#init.events(e);
  }

  #onExit(slot: WorkerSlot, worker: Worker, code: number | null, signal: string | null): void {
    if (slot.worker !== worker) return;
    const wasReady = slot.ready;
    slot.ready = false;
    slot.stats = undefined;
    for (const [allocation, a] of slot.allocations)
      this.#init.events({ type: 'allocation-ended', allocation: allocation * ID_STRIDE + slot.id, user: a.user, relay: a.relay, cause: 'server-close' });
    slot.allocations.clear();
    this.#reloads.get(slot.id)?.({ ok: false, text: 'the worker exited' });
    if (this.#stopping) return;
    const how = signal !== null ? `signal ${signal}` : `exit code ${code}`;
    if (this.#firstFailure !== undefined && !wasReady) return this.#firstFailure(`worker ${slot.id} could not start (${how}); its message is above`);
    this.#broadcastPorts();
    slot.restarts++;
    this.#init.say(`worker ${slot.id} (pid ${worker.process.pid}) exited (${how}); restarting it`);
    this.#init.logger.warn({ worker: slot.id, pid: worker.process.pid, code, signal }, 'worker exited; restarting it');
    setTimeout(() => {
      if (!this.#stopping) this.#fork(slot);
    }, RESTART_DELAY_MS);
  }

  #broadcastPorts(): void {
    const ports = this.slots.filter((s) => s.ready).map((s) => [s.id, s.own] as const);
    this.send({ t: 'ports', ports, services: this.#services });
  }
}

/** `udp 127.0.0.1:40000, tcp 127.0.0.1:40001` */
export function describe(listeners: readonly StunListener[]): string {
  return (
    listeners.map((l) => `${l.transport} ${l.address.family === 'IPv6' ? `[${l.address.address}]` : l.address.address}:${l.address.port}`).join(', ') ||
    'no port (TURN is off)'
  );
}

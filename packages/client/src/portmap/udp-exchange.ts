import { createSocket, type Socket } from 'node:dgram';
import type { EpochObservation } from '@nat/protocol';
import { PortMapError } from './errors.js';

/**
 * Retransmission waits, in ms: the time to wait after each send before sending again (the last
 * one is the time to wait before giving up).
 */
export type RetransmissionSchedule = () => Iterable<number>;

/**
 * NAT-PMP (RFC 6886 section 3.1): 250 ms, doubling, 9 sends; the last wait is 64 s. Use
 * `maxSends` to cut it short (a probe that must stay fast).
 */
export function natPmpSchedule(maxSends = 9): RetransmissionSchedule {
  return function* () {
    for (let i = 0; i < Math.min(9, maxSends); i++) yield 250 * 2 ** i;
  };
}

/**
 * PCP (RFC 6887 section 8.1.1): RT = (1 + RAND) * IRT, then RT = (1 + RAND) * min(2 * RTprev,
 * MRT), RAND uniform in [-0.1, +0.1], IRT 3 s, MRT 1024 s; MRC 0 and MRD 0 (retransmit forever)
 * unless `maxSends` bounds it.
 */
export function pcpSchedule(maxSends = Infinity, irt = 3000, mrt = 1_024_000, random: () => number = Math.random): RetransmissionSchedule {
  return function* () {
    let rt = 0;
    for (let i = 0; i < maxSends; i++) {
      const rand = random() * 0.2 - 0.1;
      rt = i === 0 ? (1 + rand) * irt : (1 + rand) * Math.min(2 * rt, mrt);
      yield Math.round(rt);
    }
  };
}

interface Pending {
  accept(msg: Uint8Array): boolean;
  cancel(): void;
}

/**
 * One UDP socket "connected" to a gateway's port, with any number of outstanding requests,
 * each retransmitted on its schedule until a datagram it accepts arrives. The thin driver of
 * the NAT-PMP and PCP codecs.
 */
export class UdpExchange {
  readonly #socket: Socket;
  readonly #pending = new Set<Pending>();
  readonly #ready: Promise<void>;
  #closed = false;
  #error: Error | undefined;

  private constructor(socket: Socket, ready: Promise<void>) {
    this.#socket = socket;
    this.#ready = ready;
    socket.on('message', (msg: Buffer) => {
      const bytes = new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength);
      for (const p of this.#pending) if (p.accept(bytes)) break;
    });
    socket.on('error', (e) => {
      this.#error = e;
    });
  }

  /** Binds a socket (on `localAddress` when given) and connects it to `gateway:port`. */
  static open(gateway: string, port: number, localAddress?: string): UdpExchange {
    const socket = createSocket({ type: 'udp4' });
    const ready = new Promise<void>((resolve, reject) => {
      socket.once('error', (e) => reject(new PortMapError('SOCKET', `UDP socket to ${gateway}:${port}: ${e.message}`, { cause: e })));
      socket.bind({ port: 0, ...(localAddress ? { address: localAddress } : {}) }, () => {
        socket.connect(port, gateway, () => resolve());
      });
    });
    ready.catch(() => {});
    return new UdpExchange(socket, ready);
  }

  /** The local address the socket sends from (the client's address as the gateway sees it on the LAN). */
  async localAddress(): Promise<string> {
    await this.#ready;
    return this.#socket.address().address;
  }

  /**
   * Sends `request` on `schedule` until `parse` returns a value for a received datagram
   * (`undefined`: not an answer to this request, keep waiting; a thrown error ends the
   * request with that error). Rejects with TIMEOUT after the schedule, ABORTED on `signal`.
   */
  async request<T>(request: Uint8Array, parse: (msg: Uint8Array) => T | undefined, schedule: RetransmissionSchedule, signal?: AbortSignal): Promise<T> {
    await this.#ready;
    if (this.#closed) throw new PortMapError('ABORTED', 'exchange closed');
    signal?.throwIfAborted();
    return new Promise<T>((resolve, reject) => {
      const waits = schedule()[Symbol.iterator]();
      let timer: NodeJS.Timeout | undefined;
      const finish = (f: () => void): void => {
        clearTimeout(timer);
        this.#pending.delete(pending);
        signal?.removeEventListener('abort', onAbort);
        f();
      };
      const onAbort = (): void => finish(() => reject(new PortMapError('ABORTED', 'request aborted', { cause: signal?.reason })));
      const pending: Pending = {
        accept: (msg) => {
          let value: T | undefined;
          try {
            value = parse(msg);
          } catch (e) {
            finish(() => reject(e));
            return true;
          }
          if (value === undefined) return false;
          finish(() => resolve(value));
          return true;
        },
        cancel: () => finish(() => reject(new PortMapError('ABORTED', 'exchange closed'))),
      };
      const send = (): void => {
        if (this.#closed) {
          finish(() => reject(new PortMapError('ABORTED', 'exchange closed')));
          return;
        }
        const next = waits.next();
        if (next.done) {
          finish(() => reject(new PortMapError('TIMEOUT', 'the gateway did not answer', this.#error ? { cause: this.#error } : {})));
          return;
        }
        this.#socket.send(request, (e) => {
          // ICMP port unreachable surfaces as ECONNREFUSED on a connected socket: keep the
          // schedule (the daemon may be starting), but remember it for the error message.
          if (e) this.#error = e;
        });
        timer = setTimeout(send, next.value);
      };
      this.#pending.add(pending);
      signal?.addEventListener('abort', onAbort, { once: true });
      send();
    });
  }

  /** Closes the socket; outstanding requests reject with ABORTED. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const p of [...this.#pending]) p.cancel();
    try {
      this.#socket.close();
    } catch {
      /* already closed */
    }
  }
}

/**
 * Remembers the last epoch a gateway sent (with the client's clock) and says, for each new one,
 * whether it shows that the gateway lost its state: the shared part of the NAT-PMP and PCP
 * clients, with the protocol's own rule (`natPmpEpochValid` or `pcpEpochValid`).
 */
export class EpochTracker {
  #last: EpochObservation | undefined;
  constructor(
    private readonly valid: (previous: EpochObservation, current: EpochObservation) => boolean,
    private readonly now: () => number = () => performance.now() / 1000,
  ) {}

  /** Records `epoch`; true when it is a reset. */
  observe(epoch: number): boolean {
    const current = { epoch, clientTime: this.now() };
    const reset = this.#last !== undefined && !this.valid(this.#last, current);
    this.#last = current;
    return reset;
  }
}

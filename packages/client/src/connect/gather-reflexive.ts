/**
 * Gathering server-reflexive candidates: the address a NAT maps a host socket to, learned with a
 * STUN Binding request sent from that very socket to each STUN server (through the client's
 * transaction layer: one {@link TransactionRunner} per socket, retransmitted at 200, 400 and
 * 800 ms and given up on 3 s after the first request), or from a port mapping the router made
 * ({@link IceConnectionOptions.mappedAddress}). Each new one is added to the agent and trickled.
 * The responses arrive on the host sockets among the agent's packets: the pump offers each STUN
 * message to {@link ReflexiveGathering.receive} first.
 */
import { Attr, type IceCandidate, StunClass, type TransportAddress, canonicalIp, decodeStunMessage, ipFamily, looksLikeStun } from '@nat/protocol';
import { encodeBindingRequest } from '../binding.js';
import { TransactionRunner } from '../driver/runner.js';
import { StunClientError } from '../errors.js';
import type { IceAgent } from '../ice/agent.js';
import { resolveServer } from '../resolve.js';
import type { RetransmissionOptions } from '../transaction/options.js';
import { candidate } from './candidates.js';
import type { BoundHost } from './gather-host.js';
import type { DatagramSocket } from './host-socket.js';

/** Binding requests from a host socket: sent at 0, 200, 600 and 1400 ms, given up on at 3000 ms. */
export const REFLEXIVE_RETRANSMISSION: RetransmissionOptions = { rto: 200, rc: 4, rm: 8 };

/** What gathering needs of its connection. */
export interface ReflexiveContext {
  readonly agent: IceAgent;
  closed(): boolean;
  /** Signals a new local candidate to the peer. */
  trickle(c: IceCandidate): void;
}

/** The server-reflexive candidates of a connection's host sockets. */
export class ReflexiveGathering {
  readonly #ctx: ReflexiveContext;
  /** One transaction runner per host socket (a socket's requests and responses are its own). */
  readonly #runners = new Map<DatagramSocket, TransactionRunner>();

  constructor(ctx: ReflexiveContext) {
    this.#ctx = ctx;
  }

  /**
   * Asks STUN server `server` for the mapped address of `host`'s socket and adds it as a
   * server-reflexive candidate with this local preference. Rejects when the server does not
   * answer (or answers with an error) before `signal`.
   */
  async fromServer(host: BoundHost, server: string, localPreference: number, signal: AbortSignal): Promise<void> {
    const { address: dest } = await resolveServer(server, { family: host.address.family });
    if (dest.family !== host.address.family || signal.aborted || this.#ctx.closed()) return;
    const { response } = await this.#runner(host).request(encodeBindingRequest(), dest, { ...REFLEXIVE_RETRANSMISSION, signal });
    const mapped = response.get(Attr.XorMappedAddress) ?? response.get(Attr.MappedAddress);
    if (mapped === undefined || this.#ctx.closed()) return;
    this.#add(host, { ...mapped, address: canonicalIp(mapped.address) }, localPreference, dest.address);
  }

  /** A server-reflexive candidate from a port mapping (`mapper`), given up on when `signal` fires. */
  async fromMapping(
    host: BoundHost,
    mapper: (base: TransportAddress) => Promise<TransportAddress | undefined>,
    localPreference: number,
    signal: AbortSignal,
  ): Promise<void> {
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<undefined>((resolve) => {
      onAbort = () => resolve(undefined);
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    });
    const mapped = await Promise.race([mapper({ ...host.address }), aborted]).finally(() => signal.removeEventListener('abort', onAbort!));
    if (mapped === undefined || signal.aborted || this.#ctx.closed()) return;
    let ip: string;
    try {
      ip = canonicalIp(mapped.address);
    } catch {
      return;
    }
    if (ipFamily(ip) !== host.address.family || !Number.isInteger(mapped.port) || mapped.port < 1 || mapped.port > 65535) return;
    this.#add(host, { family: host.address.family, address: ip, port: mapped.port }, localPreference, undefined);
  }

  /**
   * A datagram that arrived on `socket`: true when it was a response to one of this socket's
   * Binding requests (then it is handled here, and the agent must not see it).
   */
  receive(socket: DatagramSocket, bytes: Uint8Array, from: TransportAddress): boolean {
    const runner = this.#runners.get(socket);
    if (runner === undefined || runner.size === 0 || !looksLikeStun(bytes)) return false;
    try {
      const m = decodeStunMessage(bytes);
      if (m.class === StunClass.Request || m.class === StunClass.Indication) return false;
      return runner.receive(m, from);
    } catch {
      return false; // not ours: the agent decides
    }
  }

  /** Stops every request. */
  close(): void {
    for (const runner of this.#runners.values()) runner.close(new StunClientError('ABORTED', 'connection closed'));
    this.#runners.clear();
  }

  #runner(host: BoundHost): TransactionRunner {
    let runner = this.#runners.get(host.socket);
    if (runner === undefined) {
      runner = new TransactionRunner(REFLEXIVE_RETRANSMISSION, (t) => {
        if (t.destination !== undefined) host.socket.send(t.bytes, t.destination.port, t.destination.address);
      });
      this.#runners.set(host.socket, runner);
    }
    return runner;
  }

  #add(host: BoundHost, m: TransportAddress, localPreference: number, server: string | undefined): void {
    const agent = this.#ctx.agent;
    if (this.#ctx.closed()) return;
    // RFC 8445 section 5.1.3: a server-reflexive candidate equal to its base is redundant (no NAT).
    if (m.address === host.address.address && m.port === host.address.port) return;
    if (agent.localCandidates().some((l) => l.candidate.type === 'srflx' && l.candidate.address === m.address && l.candidate.port === m.port)) return;
    const c = candidate('srflx', m, host.address, host.address, localPreference, server);
    agent.addLocalCandidate(c, host.base);
    this.#ctx.trickle(c);
  }
}

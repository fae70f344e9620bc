/**
 * Gathering an ICE connection's local candidates, by kind: host sockets first (gather-host.ts;
 * their candidates go in the offer or answer), then, trickled as they come, server-reflexive
 * ones from the STUN servers and port mappings (gather-reflexive.ts) and relayed ones from the
 * TURN servers (gather-relay.ts), all given up on after `gatherTimeoutMs`.
 */
import { type IceCandidate, type SignallingIceServer, formatCandidate } from '@nat/protocol';
import { StunClientError } from '../errors.js';
import type { TurnClient } from '../turn/client.js';
import { candidate } from './candidates.js';
import type { ConnectionObservations } from './diagnosis.js';
import { type BoundHost, bindHost, hostAddressesToBind } from './gather-host.js';
import { ReflexiveGathering } from './gather-reflexive.js';
import { gatherRelay, relayCandidates } from './gather-relay.js';
import type { IceConnectionOptions } from './options.js';
import type { AgentPump } from './pump.js';
import { iceServerRefs } from './servers.js';

/** What gathering needs of its connection. */
export interface GatheringContext {
  readonly options: IceConnectionOptions;
  readonly pump: AgentPump;
  readonly observed: ConnectionObservations;
  closed(): boolean;
  /** The STUN/TURN servers: the option's, else the rendezvous client's. */
  iceServers(): readonly SignallingIceServer[];
  /** Signals a new local candidate to the peer. */
  trickle(c: IceCandidate): void;
}

/** The local candidates of one connection. */
export class Gathering {
  /** Server-reflexive candidates; the pump offers it the STUN responses first. */
  readonly reflexive: ReflexiveGathering;
  /** Whether the default host addresses include loopback ones (decided by {@link bindHosts}). */
  includeLoopback = false;
  readonly #ctx: GatheringContext;
  readonly #stop = new AbortController();

  constructor(ctx: GatheringContext) {
    this.#ctx = ctx;
    this.reflexive = new ReflexiveGathering({ agent: ctx.pump.agent, closed: () => ctx.closed(), trickle: (c) => ctx.trickle(c) });
  }

  /**
   * Binds the host sockets and adds their candidates, best first (local preference 65535 down);
   * returns them with their candidate lines for the offer or answer. `loopback`: whether default
   * host addresses include loopback ones.
   */
  async hosts(loopback: boolean): Promise<{ readonly hosts: BoundHost[]; readonly lines: string[] }> {
    const o = this.#ctx.options;
    if (o.hostCandidates === false) return { hosts: [], lines: [] };
    this.includeLoopback = loopback;
    // Explicit addresses keep the caller's order; the interfaces' are ranked (rankHostAddresses).
    const addresses = await hostAddressesToBind(o.hostAddresses, loopback, this.#ctx.iceServers());
    const out: BoundHost[] = [];
    for (const ip of addresses) {
      try {
        out.push(this.bind(ip));
      } catch {
        // an address that cannot be bound (gone, or not configured): no candidate on it
      }
    }
    const lines: string[] = [];
    for (const [i, h] of out.entries()) {
      const c = candidate('host', h.address, h.address, undefined, 65535 - i);
      this.#ctx.pump.agent.addLocalCandidate(c, h.base);
      lines.push(formatCandidate(c));
    }
    return { hosts: out, lines };
  }

  /** A host socket on `ip`, registered with the pump: a udx-native one, so a peer link's streams can run on it (host-socket.ts). */
  bind(ip: string): BoundHost {
    if (this.#ctx.closed()) throw new StunClientError('ABORTED', 'closed');
    const pump = this.#ctx.pump;
    const host = bindHost(ip, (base, socket, msg, fromIp, fromPort) => pump.onDatagram(base, socket, msg, fromIp, fromPort));
    pump.sockets.set(host.base, { socket: host.socket, address: host.address });
    return host;
  }

  /** Server-reflexive, mapped and relayed candidates of `hosts`; resolves when every attempt ended. */
  async servers(hosts: readonly BoundHost[]): Promise<void> {
    const o = this.#ctx.options;
    const signal = this.#signal();
    const tasks: Promise<void>[] = [this.#reflexive(hosts, signal)];
    const mapper = o.mappedAddress;
    if (mapper !== undefined) {
      for (const [i, h] of hosts.entries()) tasks.push(this.reflexive.fromMapping(h, mapper, 65535 - i, signal).catch(() => {}));
    }
    if (o.relay !== false)
      tasks.push(
        this.#relay(
          signal,
          () => this.#ctx.pump.turn !== undefined,
          (t) => this.useRelay(t),
        ),
      );
    await Promise.all(tasks);
  }

  /** A new TURN allocation from the configured servers (an ICE restart's, when the one in use died), or undefined. */
  async relayAgain(): Promise<TurnClient | undefined> {
    let got: TurnClient | undefined;
    await this.#relay(
      this.#signal(),
      () => got !== undefined,
      (t) => (got = t),
    );
    return got;
  }

  #relay(signal: AbortSignal, obtained: () => boolean, use: (t: TurnClient) => void): Promise<void> {
    const o = this.#ctx.options;
    const turn = iceServerRefs(this.#ctx.iceServers()).turn;
    if (turn.length === 0) return Promise.resolve();
    return gatherRelay(turn, signal, {
      closed: () => this.#ctx.closed(),
      obtained,
      use,
      failed: (server, e) => this.#ctx.observed.relayFailed(server, e),
      // no UDP answer at all in the NAT probe: TCP/TLS at once
      tcpDelayMs: o.punch?.udpBlocked === true ? 0 : (o.tcpRelayDelayMs ?? 250),
      tls: o.turnTls,
    }).catch(() => {});
  }

  /** The server-reflexive candidates of `hosts` again (an ICE restart's). */
  async reflexiveAgain(hosts: readonly BoundHost[]): Promise<void> {
    await this.#reflexive(hosts, this.#signal());
  }

  /** Stops every attempt. */
  close(): void {
    this.#stop.abort();
    this.reflexive.close();
  }

  #signal(): AbortSignal {
    return AbortSignal.any([this.#stop.signal, AbortSignal.timeout(this.#ctx.options.gatherTimeoutMs ?? 5000)]);
  }

  async #reflexive(hosts: readonly BoundHost[], signal: AbortSignal): Promise<void> {
    const stun = this.#ctx.options.serverReflexive === false ? [] : iceServerRefs(this.#ctx.iceServers()).stun;
    await Promise.all(hosts.flatMap((h, i) => stun.map((s) => this.reflexive.fromServer(h, s.server, 65535 - i, signal).catch(() => {}))));
  }

  /** Uses `turn` for the relayed bases (instead of any earlier allocation) and adds and trickles its candidates. */
  useRelay(turn: TurnClient): void {
    const { pump, observed } = this.#ctx;
    observed.relayObtained = true;
    pump.useRelay(turn);
    for (const r of relayCandidates(turn)) {
      pump.agent.addLocalCandidate(r.candidate, r.base);
      this.#ctx.trickle(r.candidate);
    }
    pump.flush();
  }
}

/**
 * What birthday punching needs to know about this side's NAT, learned at connect time: a quick
 * RFC 5780 mapping probe ({@link probeNatMapping}) against the first STUN server of the ICE
 * servers (the rendezvous service's by default), turned into {@link IcePunchOptions}. A server
 * with one address (no OTHER-ADDRESS) is compared with its next port and with the other UDP STUN
 * and TURN servers of the list.
 */
import type { SignallingIceServer } from '@nat/protocol';
import { type NatMappingProbe, probeNatMapping } from '../discovery/mapping-probe.js';
import type { BirthdayOptions } from '../ice/birthday.js';
import type { IcePunchOptions } from './punch.js';
import { iceServerRefs } from './servers.js';

/** Options of {@link learnPunchOptions}. */
export interface LearnPunchOptions {
  /** Local IP address to probe from (the ICE host address). Default: the system's choice. */
  readonly localAddress?: string;
  /** The probe gives up after this long, ms. Default 1000. */
  readonly timeoutMs?: number;
  /** Budgets of the puncher. Default: {@link BIRTHDAY_DEFAULTS}. */
  readonly birthday?: BirthdayOptions;
  readonly signal?: AbortSignal;
}

/** {@link IcePunchOptions} plus the probe they came from (absent: no STUN server to ask). */
export interface LearnedPunchOptions extends IcePunchOptions {
  readonly probe: NatMappingProbe | undefined;
}

/**
 * Probes this side's NAT mapping with the first UDP STUN server of `iceServers` (and, when it
 * has one address, the other UDP servers of the list) and returns
 * punch options for {@link IceConnectionOptions.punch}: mapping null (no punching, but the
 * peer still learns we can) when there is no STUN server or it could not tell. Bounded by
 * `timeoutMs`; rejects only with `ABORTED`.
 */
export async function learnPunchOptions(iceServers: readonly SignallingIceServer[], options: LearnPunchOptions = {}): Promise<LearnedPunchOptions> {
  const refs = iceServerRefs(iceServers);
  const server = refs.stun[0]?.server;
  const others = [...refs.stun.slice(1).map((s) => s.server), ...refs.turn.filter((t) => t.transport === 'udp').map((t) => t.server)];
  const budgets = options.birthday === undefined ? {} : { options: options.birthday };
  if (server === undefined) return { mapping: null, probe: undefined, ...budgets };
  let probe: NatMappingProbe;
  try {
    probe = await probeNatMapping({
      server,
      others,
      timeoutMs: options.timeoutMs ?? 1000,
      ...(options.localAddress === undefined ? {} : { localAddress: options.localAddress }),
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    });
  } catch (e) {
    if (options.signal?.aborted === true) throw e;
    return { mapping: null, probe: undefined, ...budgets };
  }
  // No answer to Test I within the deadline: UDP to the server does not pass (or the server is
  // down); the connection then starts TURN over TCP/TLS at once (IcePunchOptions.udpBlocked).
  const udpBlocked = probe.publicAddress === null;
  return { mapping: probe.mapping, ports: probe.portAllocation ?? 'unknown', probe, ...(udpBlocked ? { udpBlocked } : {}), ...budgets };
}

/**
 * Gathering the relayed candidates: one TURN allocation, from the first server that grants one,
 * over UDP or else TCP/TLS ("happy eyeballs" between transports), dual-stack (an IPv4 and, when
 * the server grants it, an IPv6 relayed address: one relayed candidate each, each its own base).
 */
import { type IceCandidate, canonicalIp } from '@nat/protocol';
import { relayBase, relayLocalPreference } from '../ice/family.js';
import type { BaseId } from '../ice/types.js';
import type { TurnClient, TurnClientInit } from '../turn/client.js';
import { connectDualStack } from '../turn/dual-stack.js';
import { candidate } from './candidates.js';
import type { TurnServerRef } from './servers.js';

/** What relay gathering needs of its connection. */
export interface RelayContext {
  closed(): boolean;
  /** True once an allocation is in use (a later one is released). */
  obtained(): boolean;
  /** Uses the allocation that won. */
  use(turn: TurnClient): void;
  /** An attempt on `server` (`host:port/transport`) failed. */
  failed(server: string, error: unknown): void;
  /** How long UDP servers get before TCP/TLS ones are tried too, ms. */
  readonly tcpDelayMs: number;
  readonly tls: TurnClientInit['tls'] | undefined;
}

/**
 * One relayed candidate, from the first TURN server that grants an allocation. UDP servers go
 * first; TCP and TLS ones (`?transport=tcp`, `turns:`) join `tcpDelayMs` later, or at once when
 * every UDP attempt has failed (happy eyeballs, as RFC 8305 does for address families): UDP to
 * the server is the better relay when it works (no head-of-line blocking, no TCP connection per
 * peer), but a network that blocks UDP must not wait out UDP's retransmissions (seconds) before
 * it gets any candidate. The first allocation wins; a later one is released.
 */
export async function gatherRelay(servers: readonly TurnServerRef[], signal: AbortSignal, ctx: RelayContext): Promise<void> {
  const udp = servers.filter((s) => s.transport === 'udp');
  const stream = servers.filter((s) => s.transport !== 'udp');
  const won = new AbortController();
  const attemptSignal = AbortSignal.any([signal, won.signal]);
  const attempt = async (list: readonly TurnServerRef[]): Promise<void> => {
    for (const s of list) {
      if (attemptSignal.aborted || ctx.closed() || ctx.obtained()) return;
      const turn = await allocate(s, attemptSignal, ctx);
      if (turn === undefined) continue;
      if (ctx.closed() || ctx.obtained()) {
        await turn.close();
        return;
      }
      won.abort();
      ctx.use(turn);
      return;
    }
  };
  const udpDone = attempt(udp);
  const streamDone = (async () => {
    if (stream.length === 0) return;
    if (udp.length > 0 && ctx.tcpDelayMs > 0) await delayed(ctx.tcpDelayMs, attemptSignal, udpDone);
    await attempt(stream);
  })();
  await Promise.all([udpDone, streamDone]);
}

/** An allocation on `s`, or undefined (the failure reported) when it fails or is aborted. */
async function allocate(s: TurnServerRef, signal: AbortSignal, ctx: RelayContext): Promise<TurnClient | undefined> {
  try {
    // IPv4 and, for peers on IPv6, an IPv6 relayed address (RFC 8656 ADDITIONAL-ADDRESS-FAMILY)
    return await connectDualStack({
      server: s.server,
      username: s.username,
      password: s.password,
      transport: s.transport,
      retransmission: { rto: 250, rc: 4, rm: 4, ti: 3000 },
      connectTimeoutMs: 3000,
      closeTimeoutMs: 1000,
      ...(s.transport === 'tls' && ctx.tls !== undefined ? { tls: ctx.tls } : {}),
      signal,
    });
  } catch (e) {
    if (!signal.aborted) ctx.failed(`${s.server}/${s.transport}`, e);
    return undefined;
  }
}

/** Resolves after `ms`, or sooner when `signal` fires or `sooner` settles. */
function delayed(ms: number, signal: AbortSignal, sooner: Promise<void>): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
    void sooner.then(done);
  });
}

/** The relayed candidates of an allocation: one per relayed address (IPv4, and IPv6 when granted), each its own base. */
export function relayCandidates(turn: TurnClient): { readonly candidate: IceCandidate; readonly base: BaseId }[] {
  return turn.relayedAddresses.map((a) => {
    const relayed = { ...a, address: canonicalIp(a.address) };
    const c = candidate('relay', relayed, relayed, turn.mappedAddress ?? turn.localAddress, relayLocalPreference(a.family), turn.serverAddress.address);
    return { candidate: c, base: relayBase(a.family) };
  });
}

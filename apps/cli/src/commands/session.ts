/**
 * The rendezvous session of the peer commands: which identity registers, what happens when two
 * processes register the same one, and the reconnection loop that keeps `nat listen` and
 * `nat expose` registered across server restarts.
 */
import { dirname, join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { type RendezvousClient, RendezvousError, type RendezvousIdentity, StunClientError, describeRendezvousTarget } from '@nat/client';
import { RENDEZVOUS_CLOSE_CODES } from '@nat/protocol';
import { ExitCode, UsageError } from '../exit-codes.js';
import type { Io } from '../io.js';
import { RendezvousNodes } from './rendezvous-nodes.js';

/** An identity that lives in memory only (`path` undefined). */
export type SessionIdentity = RendezvousIdentity & { readonly id: string; readonly path: string | undefined };

const identityName = (identity: SessionIdentity): string => (identity.path === undefined ? 'a key made for this run' : identity.path);

/** A file name beside `identity`'s for another process's `--identity` (as an example in messages). */
export function otherIdentityFile(identity: SessionIdentity, name: string): string {
  return identity.path === undefined ? `${name}.pem` : join(dirname(identity.path), `${name}.pem`);
}

/**
 * Refuses, before anything is sent, to connect to this peer's own id: the rendezvous would hand
 * the offer back to this very connection (or to the process it replaced).
 */
export function checkNotSelf(peerId: string, identity: SessionIdentity, command: string, what = `peer id ${peerId}`): void {
  if (peerId !== identity.id) return;
  throw new UsageError(
    `${what} is this peer's own id (identity ${identityName(identity)}): nat ${command} cannot connect to itself. ` +
      `When both ends run on this machine, give the other end its own key: --identity FILE (e.g. --identity ${otherIdentityFile(identity, 'other')})`,
  );
}

/** What a command prints when the rendezvous closed its connection because another one registered the same id (4000). */
export function replacedMessage(command: string, identity: SessionIdentity): string {
  return (
    `nat ${command}: another process registered with the rendezvous under the same identity (${identityName(identity)}, peer ${identity.id}), ` +
    `and the rendezvous keeps only the newest connection (close code 4000 "replaced"); stopping rather than taking it back. ` +
    `Give each process on this machine its own key: --identity FILE (e.g. --identity ${otherIdentityFile(identity, command)})\n`
  );
}

/** What a rendezvous close code means, for the `rendezvous-lost` line. */
function closeCodeText(code: number | null): string {
  if (code === RENDEZVOUS_CLOSE_CODES.rateLimited) return ' rate limited: this peer sent too many signalling messages';
  if (code === RENDEZVOUS_CLOSE_CODES.shutdown) return ' the server is shutting down';
  return '';
}

/** One event line: JSON on stdout with `--json`, else the text on stderr. */
export type Emit = (event: Record<string, unknown>, text: string) => void;

/** The rendezvous invite token: `--rendezvous-token`, else NAT_RENDEZVOUS_TOKEN from the environment; none when neither is set. */
export function rendezvousToken(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const token = flag ?? env.NAT_RENDEZVOUS_TOKEN;
  return token === undefined || token === '' ? undefined : token;
}

/** Options of {@link keepRendezvous}. */
export interface KeepRendezvousOptions {
  /** The rendezvous URLs (`--rendezvous`, repeatable): several are nodes to move between. */
  readonly urls: readonly string[];
  /** The invite token of a rendezvous that needs one (see {@link rendezvousToken}). */
  readonly token?: string;
  readonly identity: SessionIdentity;
  readonly command: string;
  readonly io: Io;
  readonly signal: AbortSignal;
  readonly emit: Emit;
  /** What stays up while the rendezvous is away, for the `rendezvous-lost` line: e.g. "open links". */
  readonly keeps: string;
  /** Text of the `rendezvous-reconnected` line. */
  readonly reconnected: string;
  /**
   * Called after each registration (`first` on the first one): starts accepting on `rv` and
   * returns what stops that when the connection drops, or an exit code to end with.
   */
  readonly onRegistered: (rv: RendezvousClient, first: boolean) => Promise<(() => void) | number>;
  /**
   * Resolves when a new connection is wanted now (an ICE restart after the host's address
   * changed: the old connection may have died with the address): the current one is dropped
   * without waiting for its close handshake, and the next one opens at once.
   */
  readonly renewal?: () => Promise<void>;
}

/** How one registration ended. */
type Ending = 'signal' | 'rendezvous' | 'renew';

/** Waits until the registration `rv` ends: Ctrl-C, the connection dropped, or a renewal was asked for. */
function registrationEnd(rv: RendezvousClient, o: KeepRendezvousOptions): Promise<Ending> {
  if (o.signal.aborted) return Promise.resolve('signal');
  let onAbort: (() => void) | undefined;
  return new Promise<Ending>((resolve) => {
    onAbort = () => resolve('signal');
    o.signal.addEventListener('abort', onAbort, { once: true });
    void rv.closed.then(() => resolve('rendezvous'));
    void o.renewal?.().then(() => resolve('renew'));
  }).finally(() => o.signal.removeEventListener('abort', onAbort!)); // one listener per registration would pile up
}

/**
 * Keeps a command registered until `signal` (Ctrl-C): registers, lets `onRegistered` start its
 * work, and when the connection drops (a server restart, a network outage) registers again,
 * retrying every 1 s doubling to 30 s; after a drop (4003 rate limited, 1001 shutdown...) it
 * waits 1 s first, doubling while the connection keeps dropping within a minute of registering.
 * The first registration's failure ends the command (exit 3 when nothing answered, 1 when the
 * server refused). A connection replaced by another process with the same identity (4000)
 * ends it with exit 1 and {@link replacedMessage}: reconnecting would replace the other process
 * in turn, for ever. Only the connection in use counts: one already left (renewed, or dropped
 * for silence) may end with any code.
 *
 * With several nodes (URLs, or a name with several addresses) it starts at a random one, pings
 * it (every 1 s, dropped after 1.5 s of silence) and, when it goes away, registers with the next
 * one at once (`rendezvous-switched`, from/to), going around the list; only a second drop
 * within a minute waits as above, and a round where no node answered backs off as above (and
 * resolves the names again).
 */
export async function keepRendezvous(o: KeepRendezvousOptions): Promise<number> {
  const { signal, emit } = o;
  const nodes = await RendezvousNodes.resolve(o.urls, signal);
  let first = true;
  let backoff = 1000;
  let dropDelay = 500;
  let lastDropAt = -Infinity;
  let wait = 0;
  let previous: string | undefined;
  while (!signal.aborted) {
    if (wait > 0) await delay(wait, undefined, { signal }).catch(() => {});
    if (signal.aborted) break;
    const rv = await registerOnce(o, nodes, first, backoff);
    if (typeof rv === 'number') {
      if (first) return rv;
      wait = backoff;
      backoff = Math.min(backoff * 2, 30_000);
      await nodes.refresh(signal).catch(() => {}); // aborted: the loop ends
      continue;
    }
    if (rv === undefined) break;
    backoff = 1000;
    let stop: (() => void) | number;
    try {
      stop = await o.onRegistered(rv, first);
    } catch (e) {
      await rv.close();
      throw e;
    }
    if (typeof stop === 'number') {
      await rv.close();
      return stop;
    }
    const here = RendezvousNodes.describe(rv);
    if (previous !== undefined && previous !== here)
      emit({ event: 'rendezvous-switched', from: previous, to: here }, `rendezvous moved from ${previous} to ${here}`);
    if (!first) emit({ event: 'rendezvous-reconnected', id: rv.id }, o.reconnected);
    first = false;
    previous = here;
    const registeredAt = performance.now();
    const ended = await registrationEnd(rv, o);
    stop();
    if (ended === 'renew') {
      // not awaited: a connection whose address is gone never answers the close handshake (2 s)
      void rv.close();
      wait = 0;
      continue;
    }
    await rv.close();
    if (ended === 'signal') break;
    if (rv.replaced) {
      o.io.stderr.write(replacedMessage(o.command, o.identity));
      return ExitCode.Failure;
    }
    nodes.dropped(rv);
    // a server that closed us (4003 rate limited, 1001 shutting down) is not asked again at once;
    // drops soon after registering back off further (1 s doubling to 30 s). With several nodes
    // the next one is asked at once, unless the previous drop was less than a minute ago.
    const now = performance.now();
    dropDelay = now - registeredAt > 60_000 ? 1000 : Math.min(dropDelay * 2, 30_000);
    wait = nodes.several && now - lastDropAt > 60_000 ? 0 : dropDelay;
    lastDropAt = now;
    emitLost(o, rv, nodes.several, wait);
  }
  return ExitCode.Ok;
}

/** The `rendezvous-lost` line. */
function emitLost(o: KeepRendezvousOptions, rv: RendezvousClient, several: boolean, wait: number): void {
  const code = rv.closeInfo?.code ?? null;
  const reason = rv.closeInfo?.reason ?? '';
  const why = `${code ?? '?'}${closeCodeText(code)}${several && reason !== '' && closeCodeText(code) === '' ? ` ${reason}` : ''}`;
  const next = several ? `${wait === 0 ? 'moving to the next node now' : `moving to the next node in ${wait / 1000} s`}` : `reconnecting in ${wait / 1000} s`;
  o.emit(
    { event: 'rendezvous-lost', code, retryMs: wait, ...(several ? { from: RendezvousNodes.describe(rv), reason } : {}) },
    `the rendezvous connection${several ? ` to ${RendezvousNodes.describe(rv)}` : ''} dropped (${why}); ${next} (${o.keeps} stay up)`,
  );
}

/**
 * One registration attempt over the nodes: the client, an exit code when it failed (the first
 * time: the command ends with it; later: the loop backs off), or undefined on Ctrl-C.
 */
async function registerOnce(o: KeepRendezvousOptions, nodes: RendezvousNodes, first: boolean, backoff: number): Promise<RendezvousClient | number | undefined> {
  try {
    return await nodes.connect({
      identity: o.identity,
      signal: o.signal,
      token: o.token,
      onAttemptFailed: (t, e) =>
        o.emit(
          { event: 'rendezvous-retry', url: describeRendezvousTarget(t), error: e.message, retryMs: 0 },
          `rendezvous ${describeRendezvousTarget(t)} unreachable (${e.message}); trying the next node`,
        ),
    });
  } catch (e) {
    if (o.signal.aborted) return undefined;
    if (!(e instanceof StunClientError || e instanceof RendezvousError)) throw e;
    if (e.code === 'BAD_ADDRESS') throw new UsageError(`--rendezvous: ${e.message}`);
    if (first) {
      o.io.stderr.write(`nat ${o.command}: ${e.message}\n`);
      return e.code === 'SOCKET' || e.code === 'TIMEOUT' ? ExitCode.NoAnswer : ExitCode.Failure;
    }
    o.emit({ event: 'rendezvous-retry', error: e.message, retryMs: backoff }, `rendezvous unreachable (${e.message}); retrying in ${backoff / 1000} s`);
    return ExitCode.NoAnswer;
  }
}

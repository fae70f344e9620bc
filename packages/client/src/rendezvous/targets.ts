/**
 * Several rendezvous nodes: the URLs a peer may register with (a host name with several
 * addresses counts as one target per address), and a connection to the first of them that
 * answers, starting where the caller says and going around the list once.
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { NatClientError, RendezvousError, StunClientError, abortError } from '../errors.js';
import { RendezvousClient } from './client.js';
import type { RendezvousConnectOptions } from './options.js';

/** One rendezvous node to register with. */
export interface RendezvousTarget {
  /** The service's WebSocket URL, as given. */
  readonly url: string;
  /** The address to connect to, when the URL's host name has several (one target each); else undefined: resolved when connecting. */
  readonly address?: string;
}

/** A target in words: the URL, with the address connected to when the name had several. */
export function describeRendezvousTarget(t: RendezvousTarget): string {
  return t.address === undefined ? t.url : `${t.url} (${t.address})`;
}

/** The addresses of a host name, or undefined when it does not resolve (connecting then reports it). */
async function addressesOf(host: string, resolve: (host: string) => Promise<readonly string[]>, signal?: AbortSignal): Promise<readonly string[] | undefined> {
  if (signal?.aborted) throw abortError(signal, 'rendezvous lookup');
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(abortError(signal, 'rendezvous lookup'));
    signal?.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([resolve(host), aborted]);
  } catch (e) {
    if (e instanceof NatClientError) throw e;
    return undefined;
  } finally {
    signal?.removeEventListener('abort', onAbort!);
  }
}

const systemResolve = async (host: string): Promise<readonly string[]> => (await lookup(host, { all: true })).map((a) => a.address);

/** Options of {@link resolveRendezvousTargets}. */
export interface ResolveRendezvousTargetsOptions {
  /** Aborts the lookups (rejects with `ABORTED`). */
  readonly signal?: AbortSignal;
  /** Resolves a host name to its addresses. Default: the system resolver (`dns.lookup` with `all: true`). */
  readonly resolve?: (host: string) => Promise<readonly string[]>;
}

/**
 * The targets of `urls`, in their order: a URL whose host is an IP address, that does not parse
 * (connecting reports it) or whose name has one address (or does not resolve now) is one
 * target; a name with several addresses is one target per address, in the resolver's order.
 * Repeats are dropped.
 */
export async function resolveRendezvousTargets(urls: readonly string[], options: ResolveRendezvousTargetsOptions = {}): Promise<RendezvousTarget[]> {
  const targets: RendezvousTarget[] = [];
  const seen = new Set<string>();
  const add = (t: RendezvousTarget): void => {
    const key = `${t.url} ${t.address ?? ''}`;
    if (!seen.has(key)) targets.push(t);
    seen.add(key);
  };
  for (const url of urls) {
    let host: string;
    try {
      host = new URL(url).hostname.replace(/^\[(.*)\]$/, '$1');
    } catch {
      add({ url });
      continue;
    }
    const addresses = isIP(host) === 0 ? await addressesOf(host, options.resolve ?? systemResolve, options.signal) : undefined;
    const distinct = [...new Set(addresses ?? [])];
    if (distinct.length <= 1) add({ url });
    else for (const address of distinct) add({ url, address });
  }
  return targets;
}

/** Ping defaults of a client with several targets: a stopped node is noticed within 2.5 s. */
export const FAILOVER_PING_INTERVAL_MS = 1000;
/** See {@link FAILOVER_PING_INTERVAL_MS}. */
export const FAILOVER_PING_TIMEOUT_MS = 1500;

/** Options of {@link connectRendezvousTargets}. */
export interface ConnectRendezvousTargetsOptions extends Omit<RendezvousConnectOptions, 'url' | 'address'> {
  /** The nodes, at least one. */
  readonly targets: readonly RendezvousTarget[];
  /** Index of the target tried first. Default 0. */
  readonly start?: number;
  /** Called for each target that failed before the next is tried. */
  readonly onAttemptFailed?: (target: RendezvousTarget, error: StunClientError | RendezvousError) => void;
}

/**
 * Registers with the first target that accepts, trying each once from `start` around the list.
 * With several targets the fast ping (WebSocket ping frames) is on by default ({@link FAILOVER_PING_INTERVAL_MS},
 * {@link FAILOVER_PING_TIMEOUT_MS}) so that a node that stops answering is left quickly. Resolves
 * with the client and the index of its target. Rejects at once with `BAD_ADDRESS` and `ABORTED`;
 * when every target failed, with a refusal by a server (a RendezvousError) if there was one, else
 * the last failure, its message naming each target's.
 */
export async function connectRendezvousTargets(o: ConnectRendezvousTargetsOptions): Promise<{ client: RendezvousClient; index: number }> {
  const { targets, start = 0, onAttemptFailed, ...connect } = o;
  if (targets.length === 0) throw new StunClientError('BAD_ADDRESS', 'no rendezvous URL given');
  const several = targets.length > 1;
  const failures: Array<StunClientError | RendezvousError> = [];
  for (let i = 0; i < targets.length; i++) {
    const index = (((start + i) % targets.length) + targets.length) % targets.length;
    const target = targets[index]!;
    try {
      const client = await RendezvousClient.connect({
        ...(several ? { pingIntervalMs: FAILOVER_PING_INTERVAL_MS, pingTimeoutMs: FAILOVER_PING_TIMEOUT_MS } : {}),
        ...connect,
        url: target.url,
        ...(target.address === undefined ? {} : { address: target.address }),
      });
      return { client, index };
    } catch (e) {
      if (!(e instanceof StunClientError || e instanceof RendezvousError)) throw e;
      if (e.code === 'BAD_ADDRESS' || e.code === 'ABORTED') throw e;
      failures.push(e);
      if (several) onAttemptFailed?.(target, e);
    }
  }
  const last = failures.find((f) => f instanceof RendezvousError) ?? failures.at(-1)!;
  if (!several) throw last;
  const message = `no rendezvous node answered: ${failures.map((f) => f.message).join('; ')}`;
  throw last instanceof RendezvousError ? new RendezvousError(last.code, message, { cause: last }) : new StunClientError(last.code, message, { cause: last });
}

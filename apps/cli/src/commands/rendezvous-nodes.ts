/**
 * `--rendezvous URL` given several times (or URLs separated by commas, or a host name with
 * several addresses): the rendezvous nodes a command may register with. A command starts at a
 * random one, so that peers spread over the nodes, and goes around the list in order from there
 * when its node does not answer or goes away.
 */
import { randomInt } from 'node:crypto';
import {
  type RendezvousClient,
  type RendezvousError,
  type RendezvousIdentity,
  type RendezvousTarget,
  type StunClientError,
  connectRendezvousTargets,
  describeRendezvousTarget,
  resolveRendezvousTargets,
} from '@nat/client';
import { UsageError } from '../exit-codes.js';

/** `--rendezvous` as a list: each value may hold several URLs separated by commas; one URL as a string works too. */
export function rendezvousUrls(value: string | readonly string[] | undefined): string[] {
  const values = value === undefined ? [] : typeof value === 'string' ? [value] : value;
  return values
    .flatMap((v) => v.split(','))
    .map((u) => u.trim())
    .filter((u) => u !== '');
}

/** Commander's parser of a repeatable `--rendezvous`: appends the URLs of one value. */
export const collectRendezvous = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), ...rendezvousUrls(value)];

/** Refuses several URLs where one server is meant (`nat owner`, `nat expose --public`); returns the one. */
export function singleRendezvous(value: string | readonly string[] | undefined, what: string): string | undefined {
  const urls = rendezvousUrls(value);
  if (urls.length > 1) throw new UsageError(`${what} talks to one server: give one --rendezvous URL, not ${urls.length}`);
  return urls[0];
}

/** Per-node registration deadline when there are several nodes (a stopped one accepts TCP but never answers), ms. */
const SEVERAL_NODES_TIMEOUT_MS = 5000;

/** What {@link RendezvousNodes.connect} needs besides the nodes. */
export interface NodeConnectOptions {
  readonly identity: RendezvousIdentity;
  readonly signal: AbortSignal;
  readonly token: string | undefined;
  /** A node that failed while others are left to try. */
  readonly onAttemptFailed?: (target: RendezvousTarget, error: StunClientError | RendezvousError) => void;
}

/** The rendezvous nodes of a command, and which one it is on. */
export class RendezvousNodes {
  readonly #urls: readonly string[];
  #targets: readonly RendezvousTarget[];
  #index: number;

  private constructor(urls: readonly string[], targets: readonly RendezvousTarget[]) {
    this.#urls = urls;
    this.#targets = targets;
    this.#index = targets.length > 1 ? randomInt(targets.length) : 0;
  }

  /** The nodes of `urls` (names with several addresses resolved now), starting at a random one. */
  static async resolve(urls: readonly string[], signal: AbortSignal): Promise<RendezvousNodes> {
    if (urls.length === 0) throw new UsageError('--rendezvous URL is required');
    return new RendezvousNodes(urls, await resolveRendezvousTargets(urls, { signal }));
  }

  /** The targets, in order. */
  get targets(): readonly RendezvousTarget[] {
    return this.#targets;
  }

  /**
   * Resolves the names again (after a round in which no node answered: a name's addresses may
   * have changed); the round goes on from the same position in the list.
   */
  async refresh(signal: AbortSignal): Promise<void> {
    this.#targets = await resolveRendezvousTargets(this.#urls, { signal });
    this.#index %= this.#targets.length;
  }

  /** The node registered with last (or to try first). */
  get current(): RendezvousTarget {
    return this.#targets[this.#index]!;
  }

  /** More than one node. */
  get several(): boolean {
    return this.#targets.length > 1;
  }

  /** The node of `rv` in words. */
  static describe(rv: RendezvousClient): string {
    return describeRendezvousTarget({ url: rv.url, ...(rv.address === undefined ? {} : { address: rv.address }) });
  }

  /** `rv`'s node went away: the next one is tried first. */
  dropped(rv: RendezvousClient): void {
    if (this.several && rv.url === this.current.url && rv.address === this.current.address) this.#index = (this.#index + 1) % this.#targets.length;
  }

  /**
   * Registers with the current node, else the next ones around the list (each once); the one
   * that accepted becomes the current one. Rejects as {@link connectRendezvousTargets}.
   */
  async connect(o: NodeConnectOptions): Promise<RendezvousClient> {
    const { client, index } = await connectRendezvousTargets({
      targets: this.#targets,
      start: this.#index,
      identity: o.identity,
      signal: o.signal,
      token: o.token,
      ...(this.several ? { timeoutMs: SEVERAL_NODES_TIMEOUT_MS } : {}),
      ...(o.onAttemptFailed === undefined ? {} : { onAttemptFailed: o.onAttemptFailed }),
    });
    this.#index = index;
    return client;
  }
}

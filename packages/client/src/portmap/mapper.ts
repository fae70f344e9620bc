import { PortMapError, isPortMapError } from './errors.js';
import { resolveGateway } from './gateway.js';
import { NatPmpClient } from './natpmp.js';
import { PcpClient } from './pcp.js';
import { MappingStateFile, processAlive, sameMapping } from './state.js';
import { UpnpClient, discoverIgd } from './upnp.js';
import { DEFAULT_LIFETIME, PORT_MAP_METHODS, type MappingGrant, type MappingRequest, type MethodClient, type PortMapMethod } from './types.js';

/** Options of {@link PortMapper}. */
export interface PortMapperInit {
  /** The router (default: the first IPv4 default gateway of this host). */
  readonly gateway?: string;
  /** Methods to use, in order of preference (default pcp, natpmp, upnp). */
  readonly methods?: readonly PortMapMethod[];
  /** Where to remember mappings so that a later run removes what a crashed one left (default: none). */
  readonly stateFile?: string;
  /** Bound of each method's probe, ms (default 3000). Probes run concurrently. */
  readonly probeTimeoutMs?: number;
  /** Bound of a mapping, renewal or removal request, ms (default 30000). */
  readonly requestTimeoutMs?: number;
  /** Renew when this fraction of the granted lease has passed (default 0.5; RFC 6886 3.3, RFC 6887 11.2.1). */
  readonly renewAt?: number;
  /** Local IPv4 addresses to search for UPnP devices from (default: every interface). */
  readonly interfaces?: readonly string[];
  /** Called for every lease event. */
  readonly onEvent?: (event: PortMapEvent) => void;
}

/** What a probe of one method found. */
export interface MethodProbe {
  readonly method: PortMapMethod;
  readonly available: boolean;
  /** The router's external address as this method reports it. */
  readonly externalAddress?: string;
  /** Why it is not available. */
  readonly error?: { readonly code: string; readonly message: string };
  readonly durationMs: number;
  /** UPnP: the device and service found; whether IPv6 pinholes are offered. */
  readonly upnp?: {
    readonly location: string;
    readonly deviceType: string;
    readonly serviceType: string;
    readonly friendlyName: string;
    readonly firewall?: { readonly firewallEnabled: boolean; readonly inboundPinholeAllowed: boolean };
  };
}

/** Every method's probe. */
export interface PortMapProbe {
  readonly gateway: string;
  readonly methods: readonly MethodProbe[];
  /** The first available method's external address (preference order). */
  readonly externalAddress: string | undefined;
}

/** Lease events. */
export type PortMapEvent =
  | { readonly type: 'mapped' | 'renewed' | 'removed'; readonly grant: MappingGrant }
  | { readonly type: 'restored'; readonly grant: MappingGrant; readonly reason: 'epoch-reset' | 'mapping-lost' | 'expired' }
  | { readonly type: 'error'; readonly grant: MappingGrant; readonly error: PortMapError }
  | { readonly type: 'stale-removed'; readonly grant: MappingGrant; readonly error?: PortMapError };

/** How often a permanent lease is checked, ms. */
const PERMANENT_LEASE_CHECK_MS = 30 * 60_000;
const MAX_TIMER_MS = 2 ** 31 - 1;

const asPortMapError = (e: unknown): PortMapError =>
  e instanceof PortMapError ? e : new PortMapError('SOCKET', e instanceof Error ? e.message : String(e), { cause: e });

/** A live mapping: renewed before its lease ends until removed. */
export class PortMapping {
  #grant: MappingGrant;
  #timer: NodeJS.Timeout | undefined;
  #removed = false;
  #grantedAt = Date.now();

  constructor(
    readonly request: MappingRequest,
    grant: MappingGrant,
    readonly client: MethodClient,
    readonly mapper: PortMapper,
  ) {
    this.#grant = grant;
  }

  /** The mapping as last granted. */
  get grant(): MappingGrant {
    return this.#grant;
  }
  get removed(): boolean {
    return this.#removed;
  }

  /** @internal */
  schedule(delayMs: number): void {
    clearTimeout(this.#timer);
    if (this.#removed) return;
    // Not unref'd: a live mapping keeps the process alive until it is removed (close()).
    this.#timer = setTimeout(() => void this.renew().catch(() => {}), Math.max(500, delayMs));
  }

  /** Renews now (also done automatically); resolves to the new grant. */
  async renew(): Promise<MappingGrant> {
    const previous = this.#grant;
    try {
      let reason: 'epoch-reset' | 'mapping-lost' | 'expired' | undefined;
      if (Date.now() > this.#grantedAt + previous.lifetime * 1000 && previous.lifetime > 0) reason = 'expired';
      if (this.client instanceof UpnpClient) {
        // UPnP has no epoch: ask whether the router still has it.
        const entry = await this.client.getSpecificPortMappingEntry(previous.externalPort, previous.protocol, this.mapper.requestSignal());
        if (entry === undefined) reason = 'mapping-lost';
      }
      const grant = await this.client.map(this.request, previous, this.mapper.requestSignal());
      if (this.#removed) {
        // remove() ran while this renewal was on the wire: undo what the renewal re-created.
        await this.client.unmap(grant, this.mapper.requestSignal()).catch(() => {});
        return grant;
      }
      if (grant.epochReset) reason = 'epoch-reset';
      this.#grant = grant;
      this.#grantedAt = Date.now();
      this.mapper.remember(this);
      this.mapper.emit(reason ? { type: 'restored', grant, reason } : { type: 'renewed', grant });
      this.schedule(this.mapper.renewDelay(grant.lifetime));
      return grant;
    } catch (e) {
      const error = asPortMapError(e);
      this.mapper.emit({ type: 'error', grant: previous, error });
      // Retry well before the lease ends, never in a tight loop.
      this.schedule(previous.lifetime === 0 ? 30_000 : Math.min(30_000, Math.max(1000, (previous.lifetime * 1000) / 4)));
      throw error;
    }
  }

  /** Removes the mapping from the router (idempotent). */
  async remove(): Promise<void> {
    if (this.#removed) return;
    this.#removed = true;
    clearTimeout(this.#timer);
    try {
      await this.client.unmap(this.#grant, this.mapper.requestSignal());
      this.mapper.emit({ type: 'removed', grant: this.#grant });
    } finally {
      this.mapper.forget(this);
    }
  }
}

/**
 * Port mapping with every method at once: probes PCP, NAT-PMP and UPnP concurrently and
 * reports them all, maps with the most preferred one that works (falling back to the next),
 * keeps every lease finite and renewed, removes every mapping on {@link close}, and remembers
 * them in a state file so that a later run removes those of a crashed one.
 */
export class PortMapper {
  readonly gateway: string;
  readonly #init: PortMapperInit;
  readonly #methods: readonly PortMapMethod[];
  readonly #state: MappingStateFile | undefined;
  readonly #clients = new Map<PortMapMethod, Promise<MethodClient>>();
  readonly #mappings = new Set<PortMapping>();
  readonly #closing = new AbortController();
  #probe: Promise<PortMapProbe> | undefined;

  private constructor(gateway: string, init: PortMapperInit) {
    this.gateway = gateway;
    this.#init = init;
    this.#methods = init.methods ?? PORT_MAP_METHODS;
    this.#state = init.stateFile ? new MappingStateFile(init.stateFile) : undefined;
  }

  /** Resolves the gateway and makes a mapper. */
  static async create(init: PortMapperInit = {}): Promise<PortMapper> {
    return new PortMapper(await resolveGateway(init.gateway), init);
  }

  /** @internal */
  requestSignal(): AbortSignal {
    return AbortSignal.any([this.#closing.signal, AbortSignal.timeout(this.#init.requestTimeoutMs ?? 30_000)]);
  }
  /** @internal */
  renewDelay(lifetime: number): number {
    // A permanent UPnP lease (an IGD v1 that refuses finite ones) is still checked now and then,
    // so that a router reboot that lost it is noticed; timers cannot wait past 2^31-1 ms.
    if (lifetime === 0) return PERMANENT_LEASE_CHECK_MS;
    return Math.min(lifetime * 1000 * (this.#init.renewAt ?? 0.5), MAX_TIMER_MS);
  }
  /** @internal */
  emit(e: PortMapEvent): void {
    this.#init.onEvent?.(e);
  }
  /** @internal */
  remember(m: PortMapping): void {
    this.#state?.add({ pid: process.pid, grant: m.grant, createdAt: Date.now() });
  }
  /** @internal */
  forget(m: PortMapping): void {
    this.#mappings.delete(m);
    this.#state?.remove(m.grant);
  }

  /** The client of a method (created once; UPnP searches for the device first). */
  client(method: PortMapMethod, signal?: AbortSignal): Promise<MethodClient> {
    let c = this.#clients.get(method);
    if (!c) {
      c = this.#makeClient(method, signal);
      this.#clients.set(method, c);
      // A failed UPnP search may succeed later.
      c.catch(() => this.#clients.delete(method));
    }
    return c;
  }

  async #makeClient(method: PortMapMethod, signal?: AbortSignal): Promise<MethodClient> {
    if (method === 'natpmp') return new NatPmpClient({ gateway: this.gateway });
    if (method === 'pcp') return new PcpClient({ gateway: this.gateway });
    const timeoutMs = Math.max(500, Math.floor((this.#init.probeTimeoutMs ?? 3000) / 2));
    const devices = await discoverIgd({
      gateway: this.gateway,
      timeoutMs,
      ...(this.#init.interfaces ? { interfaces: this.#init.interfaces } : {}),
      ...(signal ? { signal } : {}),
    });
    const [device] = devices;
    if (!device) throw new PortMapError('UNSUPPORTED', 'UPnP: no Internet Gateway Device answered the SSDP search');
    return new UpnpClient({ device, gateway: this.gateway });
  }

  /** Probes every method concurrently (each bounded by probeTimeoutMs); cached after the first call. */
  probe(): Promise<PortMapProbe> {
    this.#probe ??= this.#runProbe();
    return this.#probe;
  }

  async #runProbe(): Promise<PortMapProbe> {
    const timeoutMs = this.#init.probeTimeoutMs ?? 3000;
    const methods = await Promise.all(
      this.#methods.map(async (method): Promise<MethodProbe> => {
        const started = performance.now();
        const signal = AbortSignal.any([this.#closing.signal, AbortSignal.timeout(timeoutMs)]);
        try {
          const client = await this.client(method, signal);
          const externalAddress = await client.externalAddress(signal);
          let upnp: MethodProbe['upnp'];
          if (client instanceof UpnpClient) {
            const d = client.device;
            const firewall = await client.firewallStatus(signal).catch(() => undefined);
            upnp = {
              location: d.location,
              deviceType: d.description.deviceType,
              serviceType: d.service.serviceType,
              friendlyName: d.description.friendlyName,
              ...(firewall ? { firewall } : {}),
            };
          }
          return { method, available: true, externalAddress, durationMs: performance.now() - started, ...(upnp ? { upnp } : {}) };
        } catch (e) {
          let error = asPortMapError(e);
          if (error.code === 'ABORTED' && !this.#closing.signal.aborted) error = new PortMapError('TIMEOUT', `no answer within ${timeoutMs} ms`);
          return { method, available: false, error: { code: error.code, message: error.message }, durationMs: performance.now() - started };
        }
      }),
    );
    return { gateway: this.gateway, methods, externalAddress: methods.find((m) => m.available)?.externalAddress };
  }

  /**
   * Maps a port with the first method (in preference order) that the probe found available and
   * that grants it; when a method fails, the next is tried. Rejects with the last error.
   */
  async map(request: MappingRequest, method?: PortMapMethod): Promise<PortMapping> {
    const probe = await this.probe();
    const order = method ? [method] : probe.methods.filter((m) => m.available).map((m) => m.method);
    if (order.length === 0) {
      const why = probe.methods.map((m) => `${m.method}: ${m.error?.message ?? 'unavailable'}`).join('; ');
      throw new PortMapError('UNSUPPORTED', `no port mapping method works with ${this.gateway} (${why})`);
    }
    const req: MappingRequest = { ...request, lifetime: request.lifetime ?? DEFAULT_LIFETIME };
    let last: PortMapError | undefined;
    for (const m of order) {
      try {
        const client = await this.client(m, this.requestSignal());
        const grant = await client.map(req, undefined, this.requestSignal());
        const mapping = new PortMapping(req, grant, client, this);
        this.#mappings.add(mapping);
        this.remember(mapping);
        this.emit({ type: 'mapped', grant });
        mapping.schedule(this.renewDelay(grant.lifetime));
        return mapping;
      } catch (e) {
        last = asPortMapError(e);
        if (isPortMapError(e, 'PORT_TAKEN', 'ABORTED')) throw e;
      }
    }
    throw last ?? new PortMapError('UNSUPPORTED', 'no method');
  }

  /** The live mappings. */
  mappings(): PortMapping[] {
    return [...this.#mappings];
  }

  /**
   * Removes the mappings a previous run left in the state file: those of processes that no
   * longer run. Returns what was removed (or tried: an entry is forgotten either way).
   */
  async removeStale(): Promise<MappingGrant[]> {
    if (!this.#state) return [];
    const stale = this.#state.read().filter((m) => m.pid !== process.pid && !processAlive(m.pid));
    // Concurrently: a router that is gone costs one request timeout, not one per entry.
    await Promise.all(
      stale.map(async ({ grant }) => {
        let client: MethodClient | undefined;
        try {
          if (grant.method === 'upnp') {
            if (!grant.controlURL || !grant.serviceType) throw new PortMapError('BAD_RESPONSE', 'state entry without control URL');
            const service = { serviceType: grant.serviceType, serviceId: '', controlURL: grant.controlURL };
            client = new UpnpClient({
              gateway: grant.gateway,
              device: {
                location: grant.controlURL,
                description: { deviceType: '', friendlyName: '', services: [service] },
                service,
                firewall: undefined,
                localAddress: grant.internalAddress,
              },
            });
          } else client = grant.method === 'pcp' ? new PcpClient({ gateway: grant.gateway }) : new NatPmpClient({ gateway: grant.gateway });
          await client.unmap(grant, this.requestSignal());
          this.emit({ type: 'stale-removed', grant });
        } catch (e) {
          this.emit({ type: 'stale-removed', grant, error: asPortMapError(e) });
        } finally {
          client?.close();
          this.#state?.remove(grant);
        }
      }),
    );
    const removed = stale.map((m) => m.grant);
    return removed;
  }

  /** Removes every mapping from the router and closes the sockets. */
  async close(): Promise<void> {
    const results = await Promise.allSettled(this.mappings().map((m) => m.remove()));
    this.#closing.abort(new PortMapError('ABORTED', 'port mapper closed'));
    for (const c of this.#clients.values())
      c.then(
        (x) => x.close(),
        () => {},
      );
    this.#clients.clear();
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) throw asPortMapError(failed.reason);
  }
}

/**
 * Removes the mapper's mappings when the process gets SIGINT or SIGTERM, then lets the signal
 * take its course. Returns a function that uninstalls the handlers.
 */
export function removeMappingsOnSignal(mapper: PortMapper): () => void {
  const handler = (sig: NodeJS.Signals): void => {
    uninstall();
    void mapper.close().finally(() => process.kill(process.pid, sig));
  };
  const uninstall = (): void => {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  };
  process.once('SIGINT', handler);
  process.once('SIGTERM', handler);
  return uninstall;
}

/**
 * Double NAT: the router's external address differs from the address a STUN server saw. A
 * mapping on that router then does not make this host reachable from the internet. Null when
 * either address is unknown.
 */
export function isDoubleNat(routerExternal: string | undefined | null, stunObserved: string | undefined | null): boolean | null {
  if (!routerExternal || !stunObserved) return null;
  return routerExternal !== stunObserved;
}

export { sameMapping };

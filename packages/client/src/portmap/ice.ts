import type { TransportAddress } from '@nat/protocol';
import { PortMapError } from './errors.js';
import type { PortMapper, PortMapping } from './mapper.js';
import type { PortMapMethod } from './types.js';

/** Options of {@link mappedAddressSource}. */
export interface MappedAddressSourceOptions {
  /** Lease asked for each mapping, seconds (default 7200; renewed by the mapper until it is closed). */
  readonly lifetime?: number;
  /** Use only this method (default: the mapper's chooser). */
  readonly method?: PortMapMethod;
  /** Called when a base cannot be mapped (the candidate is then simply not gathered). */
  readonly onError?: (base: TransportAddress, error: PortMapError) => void;
}

/**
 * Makes the `mappedAddress` function of the ICE connection options from a {@link PortMapper}:
 * for each IPv4 host candidate base that is this host's address on the gateway's LAN, it maps
 * the base's UDP port on the router and resolves with the external address and port (a
 * server-reflexive candidate that peers can reach even when both NATs are otherwise hard).
 * Mappings are made once per base, renewed by the mapper, and removed by `mapper.close()`.
 * Bases it cannot map (loopback, IPv6, another interface, a router that refuses) resolve with
 * undefined.
 */
export function mappedAddressSource(
  mapper: PortMapper,
  options: MappedAddressSourceOptions = {},
): (base: TransportAddress) => Promise<TransportAddress | undefined> {
  const byBase = new Map<string, Promise<PortMapping | undefined>>();
  return async (base) => {
    if (base.family !== 'IPv4' || base.address.startsWith('127.')) return undefined;
    const key = `${base.address}:${base.port}`;
    let pending = byBase.get(key);
    if (!pending) {
      pending = mapper
        .map(
          { protocol: 'udp', internalPort: base.port, ...(options.lifetime !== undefined ? { lifetime: options.lifetime } : {}), description: 'nat ICE' },
          options.method,
        )
        .then(
          async (m) => {
            // The router maps to the address it saw us from: another interface's base cannot use it.
            if (m.grant.internalAddress !== base.address) {
              await m.remove().catch(() => {});
              return undefined;
            }
            return m;
          },
          (e: unknown) => {
            options.onError?.(base, e instanceof PortMapError ? e : new PortMapError('SOCKET', String(e), { cause: e }));
            return undefined;
          },
        );
      byBase.set(key, pending);
    }
    const m = await pending;
    if (!m || m.removed || m.grant.externalAddress === undefined) return undefined;
    return { family: 'IPv4', address: m.grant.externalAddress, port: m.grant.externalPort };
  };
}

import type { MappingProtocol } from '@nat/protocol';

/** The three ways of asking a router for a port mapping. */
export type PortMapMethod = 'pcp' | 'natpmp' | 'upnp';

/** Every method, in the order the chooser prefers them. */
export const PORT_MAP_METHODS: readonly PortMapMethod[] = ['pcp', 'natpmp', 'upnp'];

/** What to map. */
export interface MappingRequest {
  readonly protocol: MappingProtocol;
  /** The local port the service listens on. */
  readonly internalPort: number;
  /** The wanted external port (default: the internal port). Another is taken when it is in use, unless `exactPort`. */
  readonly externalPort?: number;
  /** Fail with PORT_TAKEN instead of accepting another external port. */
  readonly exactPort?: boolean;
  /** Requested lease, seconds (default 7200). Leases are always finite and renewed. */
  readonly lifetime?: number;
  /** UPnP's NewPortMappingDescription (default "nat"). */
  readonly description?: string;
}

/** A mapping as the gateway granted it. */
export interface MappingGrant {
  readonly method: PortMapMethod;
  readonly gateway: string;
  readonly protocol: MappingProtocol;
  /** This host's address on the gateway's LAN, as the gateway sees it. */
  readonly internalAddress: string;
  readonly internalPort: number;
  /** The router's external address, when known. */
  readonly externalAddress: string | undefined;
  readonly externalPort: number;
  /** Granted lease, seconds. */
  readonly lifetime: number;
  /** True when this answer showed the gateway had lost its state (epoch reset, RFC 6886 3.6 / RFC 6887 8.5). */
  readonly epochReset: boolean;
  /** PCP: the mapping nonce (hex); UPnP: the control URL and service type. */
  readonly nonce?: string;
  readonly controlURL?: string;
  readonly serviceType?: string;
}

/** The interface the three method clients share. */
export interface MethodClient {
  readonly method: PortMapMethod;
  readonly gateway: string;
  /** The router's external address as the method reports it. */
  externalAddress(signal?: AbortSignal): Promise<string>;
  /** Creates or renews (`previous`) a mapping. */
  map(request: MappingRequest, previous?: MappingGrant, signal?: AbortSignal): Promise<MappingGrant>;
  /** Removes a mapping. */
  unmap(grant: MappingGrant, signal?: AbortSignal): Promise<void>;
  close(): void;
}

export const DEFAULT_LIFETIME = 7200;

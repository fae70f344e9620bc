import type { MappingProtocol } from '@nat/protocol';
import { PortMapError } from './errors.js';
import { assertOnGateway } from './gateway.js';
import { UPNP_ERROR, decodeSoapResponse, encodeSoapRequest, soapAction, type UpnpService } from './soap.js';
import { DEFAULT_LIFETIME, type MappingGrant, type MappingRequest, type MethodClient } from './types.js';
import { http, type IgdDevice } from './upnp-discovery.js';

export { discoverIgd, type IgdDevice, type IgdDiscoveryOptions } from './upnp-discovery.js';

/** A port mapping entry as GetSpecificPortMappingEntry returns it. */
export interface UpnpMappingEntry {
  readonly internalClient: string;
  readonly internalPort: number;
  readonly enabled: boolean;
  readonly description: string;
  readonly leaseDuration: number;
}

/** What GetFirewallStatus says (WANIPv6FirewallControl:1). */
export interface UpnpFirewallStatus {
  readonly firewallEnabled: boolean;
  readonly inboundPinholeAllowed: boolean;
}

/** Options of {@link UpnpClient}. */
export interface UpnpClientInit {
  readonly device: IgdDevice;
  /** The router's address: every control URL must be on it (default: the host of the device's location). */
  readonly gateway?: string;
  /** Per-request timeout, ms (default 5000). */
  readonly timeoutMs?: number;
  /** Tries of another external port when the wanted one is taken on an IGD v1 (default 5). */
  readonly portTries?: number;
}

const upper = (p: MappingProtocol): string => p.toUpperCase();

/** A UPnP IGD (v1 and v2) client of one device's WAN connection service. */
export class UpnpClient implements MethodClient {
  readonly method = 'upnp' as const;
  readonly gateway: string;
  readonly device: IgdDevice;
  readonly #timeoutMs: number;
  readonly #portTries: number;
  #external: string | undefined;

  constructor(init: UpnpClientInit) {
    this.device = init.device;
    this.gateway = init.gateway ?? new URL(init.device.location).hostname;
    for (const s of [init.device.service, init.device.firewall])
      if (s !== undefined) assertOnGateway(s.controlURL, this.gateway, `control URL of ${s.serviceType}`);
    this.#timeoutMs = init.timeoutMs ?? 5000;
    this.#portTries = init.portTries ?? 5;
  }

  /** True for WANIPConnection:2 (AddAnyPortMapping, finite leases required). */
  get igdV2(): boolean {
    return this.device.service.serviceType.endsWith('WANIPConnection:2');
  }

  /** Calls a SOAP action on a service and returns the response's arguments. */
  async call(
    action: string,
    args: readonly (readonly [string, string | number])[],
    service: UpnpService = this.device.service,
    signal?: AbortSignal,
  ): Promise<Record<string, string>> {
    assertOnGateway(service.controlURL, this.gateway, `control URL of ${service.serviceType}`);
    const r = await http(service.controlURL, {
      method: 'POST',
      headers: { 'Content-Type': 'text/xml; charset="utf-8"', SOAPAction: soapAction(service.serviceType, action) },
      body: encodeSoapRequest(service.serviceType, action, args),
      timeoutMs: this.#timeoutMs,
      ...(signal ? { signal } : {}),
    });
    // Faults come with status 500; decodeSoapResponse turns them into REFUSED.
    if (r.status !== 200 && r.status !== 500) throw new PortMapError('BAD_RESPONSE', `${action}: HTTP status ${r.status}`);
    return decodeSoapResponse(r.body, action);
  }

  async externalAddress(signal?: AbortSignal): Promise<string> {
    const r = await this.call('GetExternalIPAddress', [], undefined, signal);
    const ip = r['NewExternalIPAddress'] ?? '';
    if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(ip))
      throw new PortMapError('BAD_RESPONSE', `GetExternalIPAddress: ${JSON.stringify(ip.slice(0, 60))} is not an IPv4 address`);
    this.#external = ip;
    return ip;
  }

  #addArgs(request: MappingRequest, externalPort: number, lease: number): [string, string | number][] {
    return [
      ['NewRemoteHost', ''],
      ['NewExternalPort', externalPort],
      ['NewProtocol', upper(request.protocol)],
      ['NewInternalPort', request.internalPort],
      ['NewInternalClient', this.device.localAddress],
      ['NewEnabled', 1],
      ['NewPortMappingDescription', request.description ?? 'nat'],
      ['NewLeaseDuration', lease],
    ];
  }

  async map(request: MappingRequest, previous?: MappingGrant, signal?: AbortSignal): Promise<MappingGrant> {
    const wanted = previous?.externalPort ?? request.externalPort ?? request.internalPort;
    let lease = request.lifetime ?? DEFAULT_LIFETIME;
    let externalPort: number | undefined;
    const tryAdd = async (port: number): Promise<boolean> => {
      try {
        await this.call('AddPortMapping', this.#addArgs(request, port, lease), undefined, signal);
        return true;
      } catch (e) {
        if (e instanceof PortMapError && e.resultCode === UPNP_ERROR.ONLY_PERMANENT_LEASES_SUPPORTED && lease !== 0) {
          // IGD v1 routers that refuse finite leases: map "forever", renewed and removed by us.
          lease = 0;
          return tryAdd(port);
        }
        if (e instanceof PortMapError && e.resultCode === UPNP_ERROR.CONFLICT_IN_MAPPING_ENTRY) return false;
        throw e;
      }
    };
    // AddPortMapping overwrites an entry of the same internal client (even for another
    // internal port: our own other mapping), so look before writing.
    const free = async (port: number): Promise<boolean> => {
      const e = await this.getSpecificPortMappingEntry(port, request.protocol, signal);
      return e === undefined || (e.internalClient === this.device.localAddress && e.internalPort === request.internalPort);
    };
    if ((await free(wanted)) && (await tryAdd(wanted))) externalPort = wanted;
    else if (request.exactPort)
      throw new PortMapError('PORT_TAKEN', `UPnP: external port ${wanted} is taken`, { resultCode: UPNP_ERROR.CONFLICT_IN_MAPPING_ENTRY });
    else {
      for (let i = 0; i < this.#portTries && externalPort === undefined; i++) {
        const port = 1024 + Math.floor(Math.random() * (65536 - 1024));
        if (port === wanted || !(await free(port))) continue;
        if (this.igdV2) {
          // IGD v2: the device moves to a free port itself when this one is taken by another
          // host (WANIPConnection:2 section 2.5.16) and says which.
          const r = await this.call('AddAnyPortMapping', this.#addArgs(request, port, lease), undefined, signal);
          const reserved = Number(r['NewReservedPort']);
          if (!Number.isInteger(reserved) || reserved < 1 || reserved > 0xffff) throw new PortMapError('BAD_RESPONSE', 'AddAnyPortMapping: no NewReservedPort');
          externalPort = reserved;
        } else if (await tryAdd(port)) externalPort = port;
      }
      if (externalPort === undefined) throw new PortMapError('PORT_TAKEN', `UPnP: external port ${wanted} and ${this.#portTries} others are taken`);
    }
    return {
      method: 'upnp',
      gateway: this.gateway,
      protocol: request.protocol,
      internalAddress: this.device.localAddress,
      internalPort: request.internalPort,
      externalAddress: this.#external ?? (await this.externalAddress(signal).catch(() => undefined)),
      externalPort,
      lifetime: lease,
      epochReset: false,
      controlURL: this.device.service.controlURL,
      serviceType: this.device.service.serviceType,
    };
  }

  async unmap(grant: MappingGrant, signal?: AbortSignal): Promise<void> {
    await this.call(
      'DeletePortMapping',
      [
        ['NewRemoteHost', ''],
        ['NewExternalPort', grant.externalPort],
        ['NewProtocol', upper(grant.protocol)],
      ],
      undefined,
      signal,
    );
  }

  /** GetSpecificPortMappingEntry; undefined when there is no such entry (error 714). */
  async getSpecificPortMappingEntry(externalPort: number, protocol: MappingProtocol, signal?: AbortSignal): Promise<UpnpMappingEntry | undefined> {
    try {
      const r = await this.call(
        'GetSpecificPortMappingEntry',
        [
          ['NewRemoteHost', ''],
          ['NewExternalPort', externalPort],
          ['NewProtocol', upper(protocol)],
        ],
        undefined,
        signal,
      );
      return {
        internalClient: r['NewInternalClient'] ?? '',
        internalPort: Number(r['NewInternalPort']),
        enabled: r['NewEnabled'] === '1' || r['NewEnabled'] === 'true',
        description: r['NewPortMappingDescription'] ?? '',
        leaseDuration: Number(r['NewLeaseDuration']),
      };
    } catch (e) {
      if (e instanceof PortMapError && e.resultCode === UPNP_ERROR.NO_SUCH_ENTRY) return undefined;
      throw e;
    }
  }

  /** WANIPv6FirewallControl GetFirewallStatus; undefined when the device has no such service. */
  async firewallStatus(signal?: AbortSignal): Promise<UpnpFirewallStatus | undefined> {
    const fw = this.device.firewall;
    if (!fw) return undefined;
    const r = await this.call('GetFirewallStatus', [], fw, signal);
    const yes = (v: string | undefined): boolean => v === '1' || v === 'true';
    return { firewallEnabled: yes(r['FirewallEnabled']), inboundPinholeAllowed: yes(r['InboundPinholeAllowed']) };
  }

  /** Opens an IPv6 pinhole (AddPinhole); returns its UniqueID. `protocol` is an IANA number (6 TCP, 17 UDP). */
  async addPinhole(
    p: { remoteHost?: string; remotePort?: number; internalClient: string; internalPort: number; protocol: number; leaseTime: number },
    signal?: AbortSignal,
  ): Promise<number> {
    const fw = this.device.firewall;
    if (!fw) throw new PortMapError('UNSUPPORTED', 'the device offers no WANIPv6FirewallControl service');
    const r = await this.call(
      'AddPinhole',
      [
        ['RemoteHost', p.remoteHost ?? ''],
        ['RemotePort', p.remotePort ?? 0],
        ['InternalClient', p.internalClient],
        ['InternalPort', p.internalPort],
        ['Protocol', p.protocol],
        ['LeaseTime', p.leaseTime],
      ],
      fw,
      signal,
    );
    const id = Number(r['UniqueID']);
    if (!Number.isInteger(id)) throw new PortMapError('BAD_RESPONSE', 'AddPinhole: no UniqueID');
    return id;
  }

  /** Renews a pinhole's lease (UpdatePinhole). */
  async updatePinhole(id: number, leaseTime: number, signal?: AbortSignal): Promise<void> {
    const fw = this.device.firewall;
    if (!fw) throw new PortMapError('UNSUPPORTED', 'the device offers no WANIPv6FirewallControl service');
    await this.call(
      'UpdatePinhole',
      [
        ['UniqueID', id],
        ['NewLeaseTime', leaseTime],
      ],
      fw,
      signal,
    );
  }

  /** Closes a pinhole (DeletePinhole). */
  async deletePinhole(id: number, signal?: AbortSignal): Promise<void> {
    const fw = this.device.firewall;
    if (!fw) throw new PortMapError('UNSUPPORTED', 'the device offers no WANIPv6FirewallControl service');
    await this.call('DeletePinhole', [['UniqueID', id]], fw, signal);
  }

  close(): void {}
}

import { randomBytes } from 'node:crypto';
import { NATPMP_SERVER_PORT, PCP_RESULT, decodePcpResponse, encodePcpRequest, pcpEpochValid, pcpResultName, type PcpResponse } from '@nat/protocol';
import { PortMapError } from './errors.js';
import { DEFAULT_LIFETIME, type MappingGrant, type MappingRequest, type MethodClient } from './types.js';
import { EpochTracker, UdpExchange, pcpSchedule, type RetransmissionSchedule } from './udp-exchange.js';

/** Options of {@link PcpClient}. */
export interface PcpClientInit {
  readonly gateway: string;
  /** PCP server port (default 5351). */
  readonly port?: number;
  /** Retransmissions (default RFC 6887's: IRT 3 s, doubling with +-10% jitter to 1024 s, forever). */
  readonly schedule?: RetransmissionSchedule;
  /** Clock in seconds, for the epoch check (default performance.now()). */
  readonly now?: () => number;
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const sameBytes = (a: Uint8Array | undefined, b: Uint8Array): boolean => a !== undefined && a.length === b.length && a.every((x, i) => x === b[i]);

/**
 * A PCP (RFC 6887) client of one server: MAP requests for this host's own address (never
 * THIRD_PARTY), a nonce per mapping, epoch checks. PEER requests are encoded by the codec
 * ({@link encodePcpRequest}); this client does not need them for inbound mappings.
 */
export class PcpClient implements MethodClient {
  readonly method = 'pcp' as const;
  readonly gateway: string;
  readonly #exchange: UdpExchange;
  readonly #schedule: RetransmissionSchedule;
  readonly #epochs: EpochTracker;

  constructor(init: PcpClientInit) {
    this.gateway = init.gateway;
    this.#exchange = UdpExchange.open(init.gateway, init.port ?? NATPMP_SERVER_PORT);
    this.#schedule = init.schedule ?? pcpSchedule();
    this.#epochs = new EpochTracker(pcpEpochValid, init.now);
  }

  async #map(
    o: { protocol: 'udp' | 'tcp'; internalPort: number; suggestedExternalPort: number; lifetime: number; nonce: Uint8Array; suggestedExternalAddress?: string },
    signal?: AbortSignal,
  ): Promise<PcpResponse & { clientAddress: string; epochReset: boolean }> {
    const clientAddress = await this.#exchange.localAddress();
    const bytes = encodePcpRequest({ opcode: 'map', clientAddress, ...o });
    const r = await this.#exchange.request(
      bytes,
      (msg) => {
        let d: ReturnType<typeof decodePcpResponse>;
        try {
          d = decodePcpResponse(msg);
        } catch {
          return undefined; // RFC 6887 8.3: silently drop what does not validate
        }
        if (d.opcode === 'unsupported-version') {
          throw new PortMapError('UNSUPPORTED', `PCP: the server speaks version ${d.serverVersion} only${d.serverVersion === 0 ? ' (NAT-PMP)' : ''}`, {
            resultCode: d.resultCode,
          });
        }
        // An error response may omit the body; a full one must echo our nonce, protocol and port.
        if (d.opcode !== 'map') return undefined;
        if (d.nonce === undefined) return d.resultCode !== PCP_RESULT.SUCCESS ? d : undefined;
        return sameBytes(d.nonce, o.nonce) && d.internalPort === o.internalPort ? d : undefined;
      },
      this.#schedule,
      signal,
    );
    const epochReset = this.#epochs.observe(r.epoch);
    if (r.resultCode !== PCP_RESULT.SUCCESS) {
      const code = r.resultCode === PCP_RESULT.UNSUPP_VERSION || r.resultCode === PCP_RESULT.UNSUPP_OPCODE ? 'UNSUPPORTED' : 'REFUSED';
      throw new PortMapError(code, `PCP: ${pcpResultName(r.resultCode)}`, { resultCode: r.resultCode });
    }
    return { ...r, clientAddress, epochReset };
  }

  /**
   * PCP has no "external address" request: a MAP of this client's own (unused) UDP port,
   * deleted right after, tells it (section 11.6's "assigned external IP address").
   */
  async externalAddress(signal?: AbortSignal): Promise<string> {
    const nonce = randomBytes(12);
    const port = 1 + (randomBytes(2).readUInt16BE() % 0xfffe);
    const r = await this.#map({ protocol: 'udp', internalPort: port, suggestedExternalPort: 0, lifetime: 120, nonce }, signal);
    await this.#map({ protocol: 'udp', internalPort: port, suggestedExternalPort: 0, lifetime: 0, nonce }, signal).catch(() => {});
    if (!r.assignedExternalAddress) throw new PortMapError('BAD_RESPONSE', 'PCP: no assigned external address');
    return r.assignedExternalAddress;
  }

  async map(request: MappingRequest, previous?: MappingGrant, signal?: AbortSignal): Promise<MappingGrant> {
    const nonce = previous?.nonce ? Buffer.from(previous.nonce, 'hex') : randomBytes(12);
    const wanted = previous?.externalPort ?? request.externalPort ?? request.internalPort;
    const lifetime = request.lifetime ?? DEFAULT_LIFETIME;
    const r = await this.#map(
      {
        protocol: request.protocol,
        internalPort: request.internalPort,
        suggestedExternalPort: wanted,
        lifetime,
        nonce,
        // Section 11.2: a renewal suggests the address and port it holds.
        ...(previous?.externalAddress ? { suggestedExternalAddress: previous.externalAddress } : {}),
      },
      signal,
    );
    const grant: MappingGrant = {
      method: 'pcp',
      gateway: this.gateway,
      protocol: request.protocol,
      internalAddress: r.clientAddress,
      internalPort: request.internalPort,
      externalAddress: r.assignedExternalAddress,
      externalPort: r.assignedExternalPort ?? 0,
      lifetime: r.lifetime,
      epochReset: r.epochReset,
      nonce: hex(nonce),
    };
    if (grant.externalPort === 0 || grant.lifetime === 0) throw new PortMapError('BAD_RESPONSE', 'PCP: a mapping of lifetime 0 or port 0 was granted');
    if (request.exactPort && grant.externalPort !== wanted) {
      await this.unmap(grant, signal).catch(() => {});
      throw new PortMapError('PORT_TAKEN', `PCP: external port ${wanted} is taken (the server offered ${grant.externalPort})`);
    }
    return grant;
  }

  async unmap(grant: MappingGrant, signal?: AbortSignal): Promise<void> {
    if (!grant.nonce) throw new PortMapError('BAD_RESPONSE', 'PCP: a mapping without its nonce cannot be deleted');
    // Section 15: a MAP with the same nonce, protocol and internal port and lifetime 0.
    await this.#map(
      { protocol: grant.protocol, internalPort: grant.internalPort, suggestedExternalPort: 0, lifetime: 0, nonce: Buffer.from(grant.nonce, 'hex') },
      signal,
    );
  }

  close(): void {
    this.#exchange.close();
  }
}

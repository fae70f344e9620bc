import {
  NATPMP_RESULT,
  NATPMP_SERVER_PORT,
  decodeNatPmpResponse,
  encodeNatPmpExternalAddressRequest,
  encodeNatPmpMapRequest,
  natPmpEpochValid,
  natPmpResultName,
  type NatPmpResponse,
} from '@nat/protocol';
import { PortMapError } from './errors.js';
import { DEFAULT_LIFETIME, type MappingGrant, type MappingRequest, type MethodClient } from './types.js';
import { EpochTracker, UdpExchange, natPmpSchedule, type RetransmissionSchedule } from './udp-exchange.js';

/** Options of {@link NatPmpClient}. */
export interface NatPmpClientInit {
  readonly gateway: string;
  /** Gateway port (default 5351). */
  readonly port?: number;
  /** Retransmissions (default RFC 6886's 9 sends from 250 ms, doubling). */
  readonly schedule?: RetransmissionSchedule;
  /** Clock in seconds, for the epoch check (default performance.now()). */
  readonly now?: () => number;
}

/** A NAT-PMP (RFC 6886) client of one gateway. */
export class NatPmpClient implements MethodClient {
  readonly method = 'natpmp' as const;
  readonly gateway: string;
  readonly #exchange: UdpExchange;
  readonly #schedule: RetransmissionSchedule;
  readonly #epochs: EpochTracker;
  #external: string | undefined;

  constructor(init: NatPmpClientInit) {
    this.gateway = init.gateway;
    this.#exchange = UdpExchange.open(init.gateway, init.port ?? NATPMP_SERVER_PORT);
    this.#schedule = init.schedule ?? natPmpSchedule();
    this.#epochs = new EpochTracker(natPmpEpochValid, init.now);
  }

  async #request(bytes: Uint8Array, accept: (r: NatPmpResponse) => boolean, signal?: AbortSignal): Promise<NatPmpResponse> {
    const response = await this.#exchange.request(
      bytes,
      (msg) => {
        let r: NatPmpResponse;
        try {
          r = decodeNatPmpResponse(msg);
        } catch {
          return undefined; // not an answer (RFC 6886 3.1: ignore what cannot be parsed)
        }
        return accept(r) ? r : undefined;
      },
      this.#schedule,
      signal,
    );
    if (response.resultCode !== NATPMP_RESULT.SUCCESS) {
      const code =
        response.resultCode === NATPMP_RESULT.UNSUPPORTED_VERSION || response.resultCode === NATPMP_RESULT.UNSUPPORTED_OPCODE ? 'UNSUPPORTED' : 'REFUSED';
      throw new PortMapError(code, `NAT-PMP: ${natPmpResultName(response.resultCode)}`, { resultCode: response.resultCode });
    }
    return response;
  }

  /** Whether a response answers a map request; an error may stop after the epoch (no port, section 3.5). */
  #answers(x: NatPmpResponse, protocol: MappingRequest['protocol'], internalPort: number): boolean {
    return x.op === 'map' && x.protocol === protocol && (x.internalPort === internalPort || (x.resultCode !== 0 && x.internalPort === 0));
  }

  async externalAddress(signal?: AbortSignal): Promise<string> {
    const r = await this.#request(encodeNatPmpExternalAddressRequest(), (x) => x.op === 'external-address', signal);
    this.#epochs.observe(r.epoch);
    if (r.op !== 'external-address' || r.externalAddress === undefined) throw new PortMapError('BAD_RESPONSE', 'NAT-PMP: no external address');
    this.#external = r.externalAddress;
    return r.externalAddress;
  }

  async map(request: MappingRequest, previous?: MappingGrant, signal?: AbortSignal): Promise<MappingGrant> {
    const wanted = previous?.externalPort ?? request.externalPort ?? request.internalPort;
    const bytes = encodeNatPmpMapRequest({
      protocol: request.protocol,
      internalPort: request.internalPort,
      suggestedExternalPort: wanted,
      lifetime: request.lifetime ?? DEFAULT_LIFETIME,
    });
    const r = await this.#request(bytes, (x) => this.#answers(x, request.protocol, request.internalPort), signal);
    if (r.op !== 'map') throw new PortMapError('BAD_RESPONSE', 'NAT-PMP: not a map response');
    const epochReset = this.#epochs.observe(r.epoch);
    if (r.lifetime === 0 || r.externalPort === 0) throw new PortMapError('BAD_RESPONSE', 'NAT-PMP: a mapping of lifetime 0 or port 0 was granted');
    const grant: MappingGrant = {
      method: 'natpmp',
      gateway: this.gateway,
      protocol: request.protocol,
      internalAddress: await this.#exchange.localAddress(),
      internalPort: request.internalPort,
      externalAddress: this.#external ?? (await this.externalAddress(signal).catch(() => undefined)),
      externalPort: r.externalPort,
      lifetime: r.lifetime,
      epochReset,
    };
    if (request.exactPort && grant.externalPort !== wanted) {
      await this.unmap(grant, signal).catch(() => {});
      throw new PortMapError('PORT_TAKEN', `NAT-PMP: external port ${wanted} is taken (the gateway offered ${grant.externalPort})`);
    }
    return grant;
  }

  async unmap(grant: MappingGrant, signal?: AbortSignal): Promise<void> {
    // RFC 6886 section 3.4: lifetime 0 and suggested external port 0 delete the mapping.
    const bytes = encodeNatPmpMapRequest({ protocol: grant.protocol, internalPort: grant.internalPort, suggestedExternalPort: 0, lifetime: 0 });
    const r = await this.#request(bytes, (x) => this.#answers(x, grant.protocol, grant.internalPort), signal);
    this.#epochs.observe(r.epoch);
  }

  close(): void {
    this.#exchange.close();
  }
}

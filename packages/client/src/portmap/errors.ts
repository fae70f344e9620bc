import { NatClientError } from '../errors.js';

/** What went wrong in a {@link PortMapError}. */
export type PortMapErrorCode =
  /** the gateway did not answer within the retransmission budget */
  | 'TIMEOUT'
  /** the operation's AbortSignal fired, or the mapper was closed */
  | 'ABORTED'
  /** the gateway answered with an error (a NAT-PMP/PCP result code, a UPnP SOAP fault); see `resultCode` */
  | 'REFUSED'
  /** the gateway does not speak this protocol (version mismatch, no IGD found, no WAN connection service) */
  | 'UNSUPPORTED'
  /** an answer that cannot be used: undecodable bytes, hostile or malformed XML, a nonce or port that does not match */
  | 'BAD_RESPONSE'
  /** the wanted external port is taken and the caller asked not to fall back to another */
  | 'PORT_TAKEN'
  /** the socket or HTTP connection failed */
  | 'SOCKET'
  /** no default gateway, or an address that does not parse */
  | 'NO_GATEWAY'
  /** a UPnP description or control URL that is not on the gateway's address: no request is sent there */
  | 'NOT_GATEWAY';

/** The port-mapping layer's one error type (a {@link NatClientError}): every failure of @nat/client's port mapping. */
export class PortMapError extends NatClientError<PortMapErrorCode> {
  override readonly name = 'PortMapError';
  /** For REFUSED: the method's result code (NAT-PMP/PCP result code, UPnP errorCode). */
  readonly resultCode: number | undefined;
  constructor(code: PortMapErrorCode, message: string, options: { cause?: unknown; resultCode?: number } = {}) {
    super(code, message, options);
    this.resultCode = options.resultCode;
  }
}

/** True when `e` is a {@link PortMapError} with one of the given codes (any code when none given). */
export function isPortMapError(e: unknown, ...codes: PortMapErrorCode[]): e is PortMapError {
  return e instanceof PortMapError && (codes.length === 0 || codes.includes(e.code));
}

import { addressAttribute } from './addresses.js';
import { changeRequestAttribute } from './change-request.js';
import { errorCodeAttribute } from './error-code.js';
import { passwordAlgorithmAttribute, passwordAlgorithmsAttribute } from './password-algorithms.js';
import {
  bytesAttribute,
  flagAttribute,
  textAttribute,
  uint16ThenReservedAttribute,
  uint32Attribute,
  uint64Attribute,
  uint8ThenReservedAttribute,
} from './primitives.js';
import type { AttributeSpec } from './spec.js';
import { addressErrorCodeAttribute, addressFamilyAttribute, evenPortAttribute, icmpAttribute } from './turn.js';
import { unknownAttributesAttribute } from './unknown-attributes.js';

/**
 * The one attribute registry: every attribute of STUN (RFC 8489), classic STUN (RFC 3489),
 * behaviour discovery (RFC 5780), TURN (RFC 8656), TURN-TCP (RFC 6062) and ICE (RFC 8445).
 * Use these with `message.get(Attr.XorMappedAddress)` and `attr(Attr.Software, 'x')`.
 */
export const Attr = {
  // RFC 8489 (STUN)
  MappedAddress: addressAttribute(0x0001, 'MAPPED-ADDRESS', 'RFC 8489 section 14.1', false),
  Username: textAttribute(0x0006, 'USERNAME', 'RFC 8489 section 14.3', 513),
  MessageIntegrity: bytesAttribute(0x0008, 'MESSAGE-INTEGRITY', 'RFC 8489 section 14.5', (n) => n === 20, '20'),
  ErrorCode: errorCodeAttribute,
  UnknownAttributes: unknownAttributesAttribute,
  Realm: textAttribute(0x0014, 'REALM', 'RFC 8489 section 14.9', 763, 127),
  Nonce: textAttribute(0x0015, 'NONCE', 'RFC 8489 section 14.10', 763, 127),
  // RFC 8489 section 14.6: 16 to 32 bytes, a multiple of 4 (truncation allowed down to 16).
  MessageIntegritySha256: bytesAttribute(
    0x001c,
    'MESSAGE-INTEGRITY-SHA256',
    'RFC 8489 section 14.6',
    (n) => n >= 16 && n <= 32 && n % 4 === 0,
    '16-32, a multiple of 4',
  ),
  PasswordAlgorithm: passwordAlgorithmAttribute,
  Userhash: bytesAttribute(0x001e, 'USERHASH', 'RFC 8489 section 14.4', (n) => n === 32, '32'),
  XorMappedAddress: addressAttribute(0x0020, 'XOR-MAPPED-ADDRESS', 'RFC 8489 section 14.2', true),
  PasswordAlgorithms: passwordAlgorithmsAttribute,
  AlternateDomain: textAttribute(0x8003, 'ALTERNATE-DOMAIN', 'RFC 8489 section 14.16', 255),
  Software: textAttribute(0x8022, 'SOFTWARE', 'RFC 8489 section 14.14', 763, 127),
  AlternateServer: addressAttribute(0x8023, 'ALTERNATE-SERVER', 'RFC 8489 section 14.15', false),
  Fingerprint: uint32Attribute(0x8028, 'FINGERPRINT', 'RFC 8489 section 14.7'),

  // RFC 3489 (classic STUN); 0x0007 PASSWORD was removed by RFC 5389 and is kept only to decode.
  ResponseAddress: addressAttribute(0x0002, 'RESPONSE-ADDRESS', 'RFC 3489 section 11.2.2', false),
  SourceAddress: addressAttribute(0x0004, 'SOURCE-ADDRESS', 'RFC 3489 section 11.2.5', false),
  ChangedAddress: addressAttribute(0x0005, 'CHANGED-ADDRESS', 'RFC 3489 section 11.2.3', false),
  Password: bytesAttribute(0x0007, 'PASSWORD', 'RFC 3489 section 11.2.7'),
  ReflectedFrom: addressAttribute(0x000b, 'REFLECTED-FROM', 'RFC 3489 section 11.2.11', false),

  // RFC 5780 (behaviour discovery)
  ChangeRequest: changeRequestAttribute,
  Padding: bytesAttribute(0x0026, 'PADDING', 'RFC 5780 section 7.6'),
  ResponsePort: uint16ThenReservedAttribute(0x0027, 'RESPONSE-PORT', 'RFC 5780 section 7.5'),
  CacheTimeout: uint32Attribute(0x8027, 'CACHE-TIMEOUT', 'RFC 5780 section 7.7'),
  ResponseOrigin: addressAttribute(0x802b, 'RESPONSE-ORIGIN', 'RFC 5780 section 7.3', false),
  OtherAddress: addressAttribute(0x802c, 'OTHER-ADDRESS', 'RFC 5780 section 7.4', false),

  // RFC 8656 (TURN)
  ChannelNumber: uint16ThenReservedAttribute(0x000c, 'CHANNEL-NUMBER', 'RFC 8656 section 18.1'),
  Lifetime: uint32Attribute(0x000d, 'LIFETIME', 'RFC 8656 section 18.2'),
  XorPeerAddress: addressAttribute(0x0012, 'XOR-PEER-ADDRESS', 'RFC 8656 section 18.3', true),
  Data: bytesAttribute(0x0013, 'DATA', 'RFC 8656 section 18.4'),
  XorRelayedAddress: addressAttribute(0x0016, 'XOR-RELAYED-ADDRESS', 'RFC 8656 section 18.5', true),
  RequestedAddressFamily: addressFamilyAttribute(0x0017, 'REQUESTED-ADDRESS-FAMILY', 'RFC 8656 section 18.6'),
  EvenPort: evenPortAttribute,
  RequestedTransport: uint8ThenReservedAttribute(0x0019, 'REQUESTED-TRANSPORT', 'RFC 8656 section 18.8'),
  DontFragment: flagAttribute(0x001a, 'DONT-FRAGMENT', 'RFC 8656 section 18.9'),
  ReservationToken: bytesAttribute(0x0022, 'RESERVATION-TOKEN', 'RFC 8656 section 18.10', (n) => n === 8, '8'),
  AdditionalAddressFamily: addressFamilyAttribute(0x8000, 'ADDITIONAL-ADDRESS-FAMILY', 'RFC 8656 section 18.11'),
  AddressErrorCode: addressErrorCodeAttribute,
  Icmp: icmpAttribute,

  // RFC 6062 (TURN-TCP)
  ConnectionId: uint32Attribute(0x002a, 'CONNECTION-ID', 'RFC 6062 section 6.2.1'),

  // RFC 8445 (ICE)
  Priority: uint32Attribute(0x0024, 'PRIORITY', 'RFC 8445 section 16.1'),
  UseCandidate: flagAttribute(0x0025, 'USE-CANDIDATE', 'RFC 8445 section 16.1'),
  IceControlled: uint64Attribute(0x8029, 'ICE-CONTROLLED', 'RFC 8445 section 16.1'),
  IceControlling: uint64Attribute(0x802a, 'ICE-CONTROLLING', 'RFC 8445 section 16.1'),
} as const;

const BY_TYPE = new Map<number, AttributeSpec<unknown>>();
for (const spec of Object.values(Attr) as AttributeSpec<unknown>[]) {
  if (BY_TYPE.has(spec.type)) throw new Error(`duplicate attribute type 0x${spec.type.toString(16)}`);
  BY_TYPE.set(spec.type, spec);
}

/** Every registered attribute, by type. */
export const ATTRIBUTE_REGISTRY: ReadonlyMap<number, AttributeSpec<unknown>> = BY_TYPE;

/** The registered attribute of a type, if any. */
export function attributeSpec(type: number): AttributeSpec<unknown> | undefined {
  return BY_TYPE.get(type);
}

/** The RFC name of an attribute type, or `0x....` for an unregistered one. */
export function attributeName(type: number): string {
  return BY_TYPE.get(type)?.name ?? `0x${type.toString(16).padStart(4, '0')}`;
}

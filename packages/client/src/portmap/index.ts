/**
 * Port mapping: UPnP IGD v1/v2, NAT-PMP (RFC 6886) and PCP (RFC 6887). The codecs of NAT-PMP,
 * PCP and SSDP are in @nat/protocol; the SOAP/XML codec, the three method clients, the chooser
 * and lease manager ({@link PortMapper}) are here.
 */
export { PortMapError, type PortMapErrorCode, isPortMapError } from './errors.js';
export { type PortMapMethod, PORT_MAP_METHODS, type MappingRequest, type MappingGrant, type MethodClient, DEFAULT_LIFETIME } from './types.js';
export { type RetransmissionSchedule, natPmpSchedule, pcpSchedule, UdpExchange, EpochTracker } from './udp-exchange.js';
export { defaultGateways, resolveGateway, ipv4Interfaces } from './gateway.js';
export { NatPmpClient, type NatPmpClientInit } from './natpmp.js';
export { PcpClient, type PcpClientInit } from './pcp.js';
export {
  UpnpClient,
  type UpnpClientInit,
  discoverIgd,
  type IgdDiscoveryOptions,
  type IgdDevice,
  type UpnpMappingEntry,
  type UpnpFirewallStatus,
} from './upnp.js';
export {
  parseDeviceDescription,
  encodeSoapRequest,
  decodeSoapResponse,
  soapAction,
  wanConnectionService,
  decodeXmlText,
  escapeXml,
  UPNP_ERROR,
  UPNP_MAX_DOCUMENT,
  WAN_CONNECTION_SERVICES,
  WAN_IPV6_FIREWALL_SERVICE,
  type DeviceDescription,
  type UpnpService,
} from './soap.js';
export { MappingStateFile, type StoredMapping, processAlive } from './state.js';
export {
  PortMapper,
  type PortMapperInit,
  PortMapping,
  type PortMapEvent,
  type MethodProbe,
  type PortMapProbe,
  removeMappingsOnSignal,
  isDoubleNat,
  sameMapping,
} from './mapper.js';
export { mappedAddressSource, type MappedAddressSourceOptions } from './ice.js';

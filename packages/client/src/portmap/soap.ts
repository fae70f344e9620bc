/**
 * UPnP's XML: the root device description (UPnP Device Architecture section 2.3) and SOAP 1.1
 * control messages (section 3.2). Sans-I/O text codec over fast-xml-parser with entity
 * processing off: a DOCTYPE's entities are never expanded (no "billion laughs"), only the five
 * predefined entities and character references are decoded, here. Hostile or malformed XML and
 * SOAP faults give a {@link PortMapError}, never another exception.
 */
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { PortMapError } from './errors.js';

/** Largest description or SOAP document accepted, in bytes. */
export const UPNP_MAX_DOCUMENT = 256 * 1024;
/** Deepest device nesting followed (IGD nests three levels; a hostile one could nest thousands). */
const MAX_DEVICE_DEPTH = 8;

/** WAN connection services, best first (IGD v2's WANIPConnection:2 has AddAnyPortMapping). */
export const WAN_CONNECTION_SERVICES = [
  'urn:schemas-upnp-org:service:WANIPConnection:2',
  'urn:schemas-upnp-org:service:WANIPConnection:1',
  'urn:schemas-upnp-org:service:WANPPPConnection:1',
] as const;
/** The IPv6 firewall control service of IGD v2 (pinholes). */
export const WAN_IPV6_FIREWALL_SERVICE = 'urn:schemas-upnp-org:service:WANIPv6FirewallControl:1';

/** One service of a device description. */
export interface UpnpService {
  readonly serviceType: string;
  readonly serviceId: string;
  /** Absolute control URL. */
  readonly controlURL: string;
}

/** What a root device description says. */
export interface DeviceDescription {
  readonly deviceType: string;
  readonly friendlyName: string;
  /** Every service of the root device and its embedded devices, depth first. */
  readonly services: readonly UpnpService[];
}

type Node = Record<string, unknown>;

const parser = new XMLParser({
  ignoreAttributes: true,
  removeNSPrefix: true,
  processEntities: false,
  htmlEntities: false,
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: true,
  ignoreDeclaration: true,
  ignorePiTags: true,
  isArray: (name) => name === 'service' || name === 'device',
});

/** Decodes XML's five predefined entities and character references; nothing else. */
export function decodeXmlText(text: string): string {
  return text.replace(/&(#x[0-9a-fA-F]{1,6}|#[0-9]{1,7}|amp|lt|gt|quot|apos);/g, (whole, ref: string) => {
    if (ref[0] === '#') {
      const cp = ref[1] === 'x' ? parseInt(ref.slice(2), 16) : parseInt(ref.slice(1), 10);
      return cp <= 0x10ffff && (cp < 0xd800 || cp > 0xdfff) ? String.fromCodePoint(cp) : whole;
    }
    return ({ amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" } as Record<string, string>)[ref] ?? whole;
  });
}

/** Escapes text for an XML element's content. */
export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);
}

function parseXml(xml: string, what: string): Node {
  if (xml.length > UPNP_MAX_DOCUMENT) throw new PortMapError('BAD_RESPONSE', `${what} of ${xml.length} bytes, at most ${UPNP_MAX_DOCUMENT}`);
  // DOCTYPE has no place in UPnP documents; refusing it is the simplest defence (SOAP 1.1
  // section 3 forbids it in SOAP messages too).
  if (/<!DOCTYPE/i.test(xml)) throw new PortMapError('BAD_RESPONSE', `${what} has a DOCTYPE declaration: refused`);
  let valid: true | unknown;
  try {
    valid = XMLValidator.validate(xml);
  } catch (e) {
    throw new PortMapError('BAD_RESPONSE', `${what} is not XML`, { cause: e });
  }
  if (valid !== true) throw new PortMapError('BAD_RESPONSE', `${what} is not well-formed XML`, { cause: valid });
  try {
    const doc = parser.parse(xml) as unknown;
    if (doc === null || typeof doc !== 'object') throw new Error('empty document');
    return doc as Node;
  } catch (e) {
    throw new PortMapError('BAD_RESPONSE', `${what} is not XML: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
}

const child = (n: unknown, name: string): unknown => (n !== null && typeof n === 'object' && !Array.isArray(n) ? (n as Node)[name] : undefined);
const text = (n: unknown): string => (typeof n === 'string' ? decodeXmlText(n) : typeof n === 'number' || typeof n === 'boolean' ? String(n) : '');
const list = (n: unknown): unknown[] => (Array.isArray(n) ? n : n === undefined ? [] : [n]);

/**
 * Parses a root device description fetched from `location` (relative control URLs resolve
 * against URLBase when present, else against `location`).
 */
export function parseDeviceDescription(xml: string, location: string): DeviceDescription {
  const root = child(parseXml(xml, 'device description'), 'root');
  if (root === undefined) throw new PortMapError('BAD_RESPONSE', 'device description has no <root>');
  const base = text(child(root, 'URLBase')) || location;
  const resolve = (u: string): string | undefined => {
    try {
      const url = new URL(u, base);
      return url.protocol === 'http:' ? url.href : undefined;
    } catch {
      return undefined;
    }
  };
  const services: UpnpService[] = [];
  const walk = (device: unknown, depth: number): void => {
    if (depth > MAX_DEVICE_DEPTH) return;
    for (const s of list(child(child(device, 'serviceList'), 'service'))) {
      const controlURL = resolve(text(child(s, 'controlURL')));
      const serviceType = text(child(s, 'serviceType'));
      if (controlURL && serviceType) services.push({ serviceType, serviceId: text(child(s, 'serviceId')), controlURL });
    }
    for (const d of list(child(child(device, 'deviceList'), 'device'))) walk(d, depth + 1);
  };
  const [device] = list(child(root, 'device'));
  if (device === undefined) throw new PortMapError('BAD_RESPONSE', 'device description has no <device>');
  walk(device, 0);
  return { deviceType: text(child(device, 'deviceType')), friendlyName: text(child(device, 'friendlyName')), services };
}

/** The best WAN connection service of a description, or undefined. */
export function wanConnectionService(d: DeviceDescription): UpnpService | undefined {
  for (const type of WAN_CONNECTION_SERVICES) {
    const s = d.services.find((x) => x.serviceType === type);
    if (s) return s;
  }
  return undefined;
}

/** A SOAP request body: the envelope with `action` of `serviceType` and its arguments in order. */
export function encodeSoapRequest(serviceType: string, action: string, args: readonly (readonly [string, string | number])[]): string {
  if (!/^[A-Za-z][A-Za-z0-9_]*$/.test(action)) throw new PortMapError('BAD_RESPONSE', `bad action name ${JSON.stringify(action)}`);
  const body = args
    .map(([k, v]) => {
      if (!/^[A-Za-z][A-Za-z0-9_]*$/.test(k)) throw new PortMapError('BAD_RESPONSE', `bad argument name ${JSON.stringify(k)}`);
      return `<${k}>${escapeXml(String(v))}</${k}>`;
    })
    .join('');
  return (
    '<?xml version="1.0"?>\r\n' +
    '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/">' +
    `<s:Body><u:${action} xmlns:u="${escapeXml(serviceType)}">${body}</u:${action}></s:Body></s:Envelope>`
  );
}

/** The SOAPAction header value of an action. */
export function soapAction(serviceType: string, action: string): string {
  return `"${serviceType}#${action}"`;
}

/** UPnP error codes a port-mapping client acts on (IGD WANIPConnection:2 section 2.4). */
export const UPNP_ERROR = {
  INVALID_ARGS: 402,
  ACTION_FAILED: 501,
  NO_SUCH_ENTRY: 714,
  CONFLICT_IN_MAPPING_ENTRY: 718,
  SAME_PORT_VALUES_REQUIRED: 724,
  ONLY_PERMANENT_LEASES_SUPPORTED: 725,
  REMOTE_HOST_ONLY_SUPPORTS_WILDCARD: 726,
  EXTERNAL_PORT_ONLY_SUPPORTS_WILDCARD: 727,
  NO_PORT_MAPS_AVAILABLE: 728,
  CONFLICT_WITH_OTHER_MECHANISMS: 729,
} as const;

/**
 * Decodes a SOAP response to `action`: the `<actionResponse>` element's children as strings.
 * A SOAP fault becomes a REFUSED {@link PortMapError} with the UPnPError code as `resultCode`.
 */
export function decodeSoapResponse(xml: string, action: string): Record<string, string> {
  const envelope = child(parseXml(xml, 'SOAP response'), 'Envelope');
  const body = child(envelope, 'Body');
  if (body === undefined) throw new PortMapError('BAD_RESPONSE', 'SOAP response without Envelope/Body');
  const fault = child(body, 'Fault');
  if (fault !== undefined) {
    const err = child(child(fault, 'detail'), 'UPnPError');
    const code = Number(text(child(err, 'errorCode')));
    const description = text(child(err, 'errorDescription')) || text(child(fault, 'faultstring')) || 'SOAP fault';
    throw new PortMapError('REFUSED', `${action}: UPnP error ${Number.isFinite(code) ? code : '?'} ${description}`, {
      ...(Number.isInteger(code) ? { resultCode: code } : {}),
    });
  }
  const response = child(body, `${action}Response`);
  if (response === undefined) throw new PortMapError('BAD_RESPONSE', `SOAP response without ${action}Response`);
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  if (response !== null && typeof response === 'object' && !Array.isArray(response)) {
    for (const [k, v] of Object.entries(response as Node)) out[k] = text(v);
  }
  return out;
}

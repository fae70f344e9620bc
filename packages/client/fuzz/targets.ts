/**
 * Fuzz targets of UPnP's XML, which any host on the LAN can serve: the root device description
 * (fetched from an SSDP answer's LOCATION) and SOAP responses. Both fail only with PortMapError.
 */
import { isDeepStrictEqual } from 'node:util';
import { PortMapError, decodeSoapResponse, escapeXml, parseDeviceDescription } from '../src/index.js';
import { type FuzzTarget, loadCorpus } from './harness.js';

const CORPUS = new URL('./corpus/', import.meta.url);
const isPortMapError = (e: unknown): boolean => e instanceof PortMapError;
const utf8 = new TextDecoder();
const LOCATION = 'http://198.18.0.1:5000/rootDesc.xml';
const XML_TOKENS = [
  '<',
  '>',
  '/>',
  '</',
  '<root>',
  '</root>',
  '<device>',
  '</device>',
  '<serviceList>',
  '<service>',
  '<controlURL>',
  '<deviceList>',
  '&amp;',
  '&#x110000;',
  '&#0;',
  '&lt;',
  '<![CDATA[',
  ']]>',
  '<!--',
  '-->',
  '<?xml version="1.0"?>',
  '<!DOCTYPE',
  '<__proto__>',
  '<constructor>',
  'xmlns:s="x"',
  '<s:Body>',
  '<s:Fault>',
  '<detail>',
  '<UPnPError>',
  '<errorCode>',
  '"',
  "'",
  '=',
];

export const upnpDescriptionTarget: FuzzTarget = {
  name: 'upnp-description',
  corpus: loadCorpus(CORPUS, 'upnp-description'),
  typed: isPortMapError,
  dictionary: XML_TOKENS,
  run: (input) => parseDeviceDescription(utf8.decode(input), LOCATION),
};

/** The action a SOAP seed answers: the first `...Response` element's name, else GetExternalIPAddress. */
const actionOf = (text: string): string => /<(?:\w+:)?(\w+)Response[\s>]/.exec(text)?.[1] ?? 'GetExternalIPAddress';

export const soapResponseTarget: FuzzTarget = {
  name: 'soap-response',
  corpus: loadCorpus(CORPUS, 'soap-response'),
  typed: isPortMapError,
  dictionary: XML_TOKENS,
  run(input) {
    const text = utf8.decode(input);
    try {
      return decodeSoapResponse(text, actionOf(text));
    } catch (error) {
      // a SOAP fault is a valid answer: the gateway's refusal, with its UPnP error code
      if (error instanceof PortMapError && error.code === 'REFUSED') return { refused: error.resultCode ?? null };
      throw error;
    }
  },
  roundTrip(seed) {
    const text = utf8.decode(seed);
    const action = actionOf(text);
    let values: Record<string, string>;
    try {
      values = decodeSoapResponse(text, action);
    } catch (error) {
      if (error instanceof PortMapError && error.code === 'REFUSED') return; // a fault seed
      throw error;
    }
    // the same values, escaped back into a response, decode to the same values
    const body = Object.entries(values)
      .map(([k, v]) => `<${k}>${escapeXml(v)}</${k}>`)
      .join('');
    const again = decodeSoapResponse(
      `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><u:${action}Response xmlns:u="urn:x">${body}</u:${action}Response></s:Body></s:Envelope>`,
      action,
    );
    if (!isDeepStrictEqual({ ...again }, { ...values })) throw new Error('a SOAP response does not round-trip');
  },
};

export const TARGETS: readonly FuzzTarget[] = [upnpDescriptionTarget, soapResponseTarget];

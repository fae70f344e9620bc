/**
 * Writes the valid seeds of fuzz/corpus/<target>.json (`tsx fuzz/make-corpus.ts`): miniupnpd
 * 2.3.1's root description (test/fixtures) and SOAP answers captured from it. Committed; the
 * `crashers` already in a file are kept.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';

const CORPUS = new URL('./corpus/', import.meta.url);
const ROOT_DESC = readFileSync(new URL('../test/fixtures/portmap/miniupnpd-rootDesc.xml', import.meta.url), 'utf8');

function write(name: string, text: string[]): void {
  const file = new URL(`${name}.json`, CORPUS);
  const old = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as { crashers?: string[] }) : {};
  writeFileSync(file, `${JSON.stringify({ text, crashers: old.crashers ?? [] }, null, 2)}\n`);
}

const envelope = (body: string): string =>
  `<?xml version="1.0"?>\r\n<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body>${body}</s:Body></s:Envelope>\r\n`;

write('upnp-description', [
  ROOT_DESC,
  '<?xml version="1.0"?><root xmlns="urn:schemas-upnp-org:device-1-0"><URLBase>http://198.18.0.1:5000/</URLBase><device><deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:1</deviceType><friendlyName>R &amp; D</friendlyName><deviceList><device><serviceList><service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:1</serviceType><serviceId>urn:upnp-org:serviceId:WANIPConn1</serviceId><controlURL>/ctl/IPConn</controlURL></service></serviceList></device></deviceList></device></root>',
]);
write('soap-response', [
  envelope(
    '<u:GetExternalIPAddressResponse xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:1"><NewExternalIPAddress>203.0.113.254</NewExternalIPAddress></u:GetExternalIPAddressResponse>',
  ),
  envelope(
    '<u:AddAnyPortMappingResponse xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:2"><NewReservedPort>40000</NewReservedPort></u:AddAnyPortMappingResponse>',
  ),
  envelope(
    '<u:GetSpecificPortMappingEntryResponse xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:1"><NewInternalPort>5000</NewInternalPort><NewInternalClient>192.168.1.2</NewInternalClient><NewEnabled>1</NewEnabled><NewPortMappingDescription>nat &lt;tunnel&gt;</NewPortMappingDescription><NewLeaseDuration>3600</NewLeaseDuration></u:GetSpecificPortMappingEntryResponse>',
  ),
  envelope('<u:DeletePortMappingResponse xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:1"></u:DeletePortMappingResponse>'),
  envelope(
    '<s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail><UPnPError xmlns="urn:schemas-upnp-org:control-1-0"><errorCode>714</errorCode><errorDescription>NoSuchEntryInArray</errorDescription></UPnPError></detail></s:Fault>',
  ),
]);
console.log('corpus written');

/**
 * What a consumer of the published packages writes: started by tests/packaging/pack.test.ts in
 * a folder where only the packed tarballs (and @types/node, which the packages' public types
 * need) were installed with npm, type-checked there with `tsc --strict` and no `lib` setting,
 * then run with node. It starts a STUN server on 127.0.0.1 (port 0) with @nat/server, asks it
 * for a binding with @nat/client, checks the mapped address and prints it as JSON.
 */
import { stunBinding, type StunBindingResult } from '@nat/client';
import { formatTransportAddress } from '@nat/protocol';
import { startStunServer } from '@nat/server';

const server = await startStunServer({ listen: ['127.0.0.1'], port: 0, altPort: null, tcp: false });
try {
  const endpoint = server.endpoints[0];
  if (!endpoint) throw new Error('the STUN server reports no endpoint');
  const result: StunBindingResult = await stunBinding(`127.0.0.1:${endpoint.port}`, { localAddress: '127.0.0.1' });
  const { mappedAddress, localAddress } = result;
  if (mappedAddress.address !== '127.0.0.1' || mappedAddress.port !== localAddress.port) {
    throw new Error(`mapped address ${formatTransportAddress(mappedAddress)} is not the local address ${formatTransportAddress(localAddress)}`);
  }
  console.log(JSON.stringify({ server: endpoint.port, mapped: formatTransportAddress(mappedAddress), local: formatTransportAddress(localAddress) }));
} finally {
  await server.close();
}

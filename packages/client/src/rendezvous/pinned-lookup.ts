import { type LookupFunction, isIP } from 'node:net';

/**
 * A `lookup` for a socket's connect that answers `address` for any name: connects to one of a
 * name's several addresses while the Host header and the TLS server name keep the name.
 */
export function pinnedLookup(address: string): LookupFunction {
  const family = isIP(address) === 6 ? 6 : 4;
  return (_hostname, options, callback) => {
    if (options.all === true) callback(null, [{ address, family }]);
    else callback(null, address, family);
  };
}

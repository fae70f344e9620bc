import { formatIPv4, ipToBytes } from '../address.js';

/**
 * The key a per-source share is counted under, by every pool of a server (connections,
 * allocations, expose sessions, flows): the IPv4 address, or the /64 prefix of an IPv6 address
 * (one subscriber usually holds a whole /64, so per-address counting would give it 2^64 shares).
 * An IPv4-mapped IPv6 address (`::ffff:192.0.2.1`, as a dual-stack socket reports IPv4 clients)
 * counts as its IPv4 address. Text that is not an IP address is its own key.
 */
export function sourceKey(address: string): string {
  let bytes: Uint8Array;
  try {
    bytes = ipToBytes(address);
  } catch {
    return address;
  }
  if (bytes.length === 4) return formatIPv4(bytes, 0);
  let mapped = bytes[10] === 0xff && bytes[11] === 0xff;
  for (let i = 0; i < 10 && mapped; i++) mapped = bytes[i] === 0;
  if (mapped) return formatIPv4(bytes, 12);
  let key = '';
  for (let i = 0; i < 8; i += 2) key += `${((bytes[i]! << 8) | bytes[i + 1]!).toString(16)}:`;
  return `${key}:/64`;
}

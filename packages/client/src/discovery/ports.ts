/**
 * How a NAT picks the external port of a new mapping (RFC 4787 section 4.2.1 "port
 * assignment"), guessed from the ports of successive new mappings.
 *
 * @module
 */

/**
 * `preserving`: the external port is the local port; `sequential`: each new mapping takes a
 * port a little above the previous one (port prediction works); `random`: neither (RFC 6056
 * style randomisation, Linux `fully-random`); null: unknown.
 */
export type PortAllocation = 'preserving' | 'sequential' | 'random' | null;

/**
 * Guesses a NAT's port allocation from the external ports of successive new mappings (for
 * example discovery's mapping Tests I, II and III, in the order they were made): `preserving`
 * when every one kept `localPort`, `sequential` when each is a little above the previous (by 1
 * to `maxStep`), `random` otherwise; null with fewer than two ports.
 */
export function classifyPortAllocation(mappedPorts: readonly number[], localPort?: number, maxStep = 16): PortAllocation {
  if (localPort !== undefined && mappedPorts.length > 0 && mappedPorts.every((p) => p === localPort)) return 'preserving';
  if (mappedPorts.length < 2) return null;
  for (let i = 1; i < mappedPorts.length; i++) {
    const step = mappedPorts[i]! - mappedPorts[i - 1]!;
    if (step < 1 || step > maxStep) return 'random';
  }
  return 'sequential';
}

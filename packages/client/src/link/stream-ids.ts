import { randomBytes } from 'node:crypto';
import { type UdxStream, udx } from './native.js';

const liveStreamIds = new Set<number>();
/**
 * A udx stream id, unique within the process's udx instance while its stream lives, and random,
 * so that a host off the path cannot guess it to inject packets into a direct stream (which the
 * records would refuse, but at the cost of the stream).
 */
function allocStreamId(): number {
  for (;;) {
    const id = randomBytes(4).readUInt32BE() >>> 1;
    if (id !== 0 && !liveStreamIds.has(id)) {
      liveStreamIds.add(id);
      return id;
    }
  }
}
/** A new udx stream of the process's udx instance, with a fresh id. */
export function createRawStream(): UdxStream {
  const id = allocStreamId();
  const raw = udx().createStream(id);
  raw.once('close', () => liveStreamIds.delete(id));
  return raw;
}

import { Attr, type AttributeEntry, attr, errorCode, errorReason } from '@nat/protocol';

/** Header (20) plus an ERROR-CODE without reason phrase (8): the smallest error answer there is. */
export const MIN_ERROR_ANSWER = 28;

/**
 * The attributes of an error answer to an unauthenticated request, bounded for UDP (a
 * reflection/amplification bound): ERROR-CODE always; with 420, the first UNKNOWN-ATTRIBUTES
 * entry (an `extra` entry) always (a 420 without it tells the client nothing; RFC 5780 clients
 * look for CHANGE-REQUEST there) and the others as they fit; the reason phrase only when it fits
 * after them. Other `extra` attributes are kept as they are. `budget` is the request's size:
 * a 20-byte request gets at most a 28-byte answer ({@link MIN_ERROR_ANSWER}), a 420 at most
 * 36 bytes to a request of at least 24. Streams (`budget` Infinity) get everything.
 */
export function boundedErrorAttributes(code: number, reason: string | undefined, extra: readonly AttributeEntry[], budget: number): AttributeEntry[] {
  const limit = Math.max(budget, MIN_ERROR_ANSWER);
  const unknownEntry = extra.find((e) => e.spec === Attr.UnknownAttributes);
  const unknown = (unknownEntry?.value as readonly number[] | undefined) ?? [];
  let size = MIN_ERROR_ANSWER;
  let listed = unknown.length;
  // UNKNOWN-ATTRIBUTES: a 4-byte header and 2 bytes per type, padded to 4.
  while (listed > 1 && size + 4 + ((listed * 2 + 3) & ~3) > limit) listed--;
  if (listed > 0) size += 4 + ((listed * 2 + 3) & ~3);
  const phrase = reason ?? errorReason(code);
  const fits = size + ((Buffer.byteLength(phrase) + 3) & ~3) <= limit;
  const attributes: AttributeEntry[] = [attr(Attr.ErrorCode, errorCode(code, fits ? phrase : ''))];
  if (listed > 0) attributes.push(attr(Attr.UnknownAttributes, unknown.slice(0, listed)));
  for (const e of extra) if (e !== unknownEntry) attributes.push(e);
  return attributes;
}

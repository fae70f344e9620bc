/**
 * Responses one `request` listener of a shared node:http server answers later (after an await):
 * the listeners after it leave such a response alone, as they leave one whose headers are sent.
 */
import type { ServerResponse } from 'node:http';

const claimed = new WeakSet<ServerResponse>();

/** Marks `res` as answered by the caller, later. */
export function claimResponse(res: ServerResponse): void {
  claimed.add(res);
}

/** True when an earlier listener answered `res` or will (its headers are sent, or it was claimed). */
export function isAnswered(res: ServerResponse): boolean {
  return res.headersSent || claimed.has(res);
}

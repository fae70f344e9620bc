/**
 * Checks shared by the moving-peer lab tests (moving.test.ts): an intact transfer, the link's
 * routes and the path gap of an ICE restart, from the tunnel commands' JSON events.
 */
import { expect } from 'vitest';
import type { LabProcess } from './netns.js';
import { jsonLines } from './ice-lab.js';
import type { TransferReport } from './moving-lab.js';

/** One JSON event of a tunnel command. */
export type Json = Record<string, unknown>;

/** The reader's end is a clean end of stream with every byte, its SHA-256 equal to the sender's. */
export function expectIntact(reader: TransferReport | undefined, sender: TransferReport | undefined, bytes: number, log: string): void {
  expect(reader, log).toBeDefined();
  expect(sender, log).toBeDefined();
  // never a clean end of stream short of the bytes sent
  expect(reader!.end, `the reader ended with ${reader!.end} ${reader!.code ?? ''} after ${reader!.received} bytes\n${log}`).toBe('eof');
  expect(reader!.received, log).toBe(bytes);
  expect(reader!.sha256, log).toBe(sender!.sha256);
}

/** The link's routes in order (the `link` event's, then each `route` event's). */
export function routes(p: LabProcess): string[] {
  return jsonLines(p)
    .filter((e) => (e.event === 'link' || e.event === 'route') && typeof e.route === 'string')
    .map((e) => String(e.route));
}

/**
 * The gap from the `path` event that starts a restart (or, when this side did not restart, the
 * last path before the new one) to the next path not restarting: ms and the local candidates.
 */
export function pathGap(events: readonly Json[]): { ms: number; from: string; to: string } | undefined {
  const paths = events.filter((e) => e.event === 'path');
  let start = paths.findIndex((e) => e.restarting === true);
  if (start < 0) start = paths.length - 2;
  if (start < 0) return undefined;
  const next = paths.slice(start + 1).find((e) => e.restarting !== true);
  if (next === undefined) return undefined;
  const address = (e: Json): string => String((e.localCandidate as { address?: string } | undefined)?.address);
  return { ms: Date.parse(String(next.time)) - Date.parse(String(paths[start]!.time)), from: address(paths[start]!), to: address(next) };
}

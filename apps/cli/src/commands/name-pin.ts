/**
 * `nat connect NAME@PEER_ID`: the name as the rendezvous resolves it, pinned to the peer id the
 * user expects. With a bare NAME, `nat connect` trusts the rendezvous for which key owns the
 * name (the peer link then verifies that key, but the rendezvous chose it); with a pin, an
 * answer naming another key is refused before any connection is made.
 */
import type { RendezvousClient } from '@nat/client';
import { PeerId } from '@nat/protocol';
import { ExitCode, UsageError } from '../exit-codes.js';
import type { Io } from '../io.js';

/** Splits `NAME@PEER_ID` into the name and the pinned peer id; any other argument is returned as it is. */
export function pinnedTarget(arg: string): { nameOrPeer: string; pin: string | undefined } {
  const at = arg.lastIndexOf('@');
  if (at < 0) return { nameOrPeer: arg, pin: undefined };
  const pin = arg.slice(at + 1);
  if (!PeerId.safeParse(pin).success) {
    throw new UsageError(`${JSON.stringify(arg)}: after the @ comes the peer id that owns the name (32 lower-case base32 characters, as nat expose prints it)`);
  }
  if (PeerId.safeParse(arg.slice(0, at)).success)
    throw new UsageError(`${JSON.stringify(arg)}: NAME@PEER_ID pins a name; a peer id needs no pin (use --service NAME)`);
  return { nameOrPeer: arg.slice(0, at), pin };
}

/** The name resolved to another key than the pinned one: says so, closes the rendezvous connection, exit 1. */
export async function refusePinned(rv: RendezvousClient, io: Io, o: { name: string; resolved: string; pin: string; rendezvous: string }): Promise<number> {
  await rv.close();
  io.stderr.write(
    `nat connect: the rendezvous ${o.rendezvous} says the name ${o.name} belongs to peer ${o.resolved}, not to the pinned peer ${o.pin}; not connecting. ` +
      `If the owner changed its key, pin the new id (${o.name}@NEW_PEER_ID); to connect by key alone, give the peer id and --service ${o.name}\n`,
  );
  return ExitCode.Failure;
}

/**
 * Birthday punching (punch.ts) inside an ICE connection: the {@link PunchHost} it drives is the
 * connection's agent pump, whose sockets its extra sockets join as bases and whose input path
 * their datagrams take; the peer's mapping comes from its offer or answer `app` keys.
 */
import { punchInfoFromApp } from '../ice/birthday.js';
import type { AgentPump } from './pump.js';
import { type IcePunchOptions, SocketPunch } from './punch.js';

/** Birthday punching on `pump`'s agent and sockets. */
export function punchOnPump(pump: AgentPump, options: IcePunchOptions): SocketPunch {
  return new SocketPunch(
    {
      agent: pump.agent,
      addBase: (base, socket, address) => void pump.sockets.set(base, { socket, address }),
      removeBase: (base) => void pump.sockets.delete(base),
      deliver: (base, socket, bytes, from) => pump.onDatagram(base, socket, bytes, from.address, from.port),
      flush: () => pump.flush(),
      socketOf: (base) => (base === undefined ? undefined : pump.sockets.get(base)?.socket),
    },
    options,
  );
}

/** Gives punching the peer's mapping (its `app` keys) and both sides' credentials, from the peer's description. */
export function setPunchRemote(
  punch: SocketPunch | undefined,
  pump: AgentPump,
  app: Readonly<Record<string, string>> | undefined,
  ufrag: string,
  pwd: string,
): void {
  const local = pump.agent.localCredentials;
  punch?.setRemote(punchInfoFromApp(app), { localUfrag: local.ufrag, localPwd: local.pwd, remoteUfrag: ufrag, remotePwd: pwd });
}

import { type IceConnection, StunClientError, acceptPeers } from '@nat/client';
import { ExitCode } from '../exit-codes.js';
import type { Io } from '../io.js';
import { type PeerCommandOptions, connectionOptions, describePath, endpointJson, loadIdentity, natJson, openRendezvous, punchOptions } from './ping.js';

/**
 * `nat listen`: registers with the rendezvous service, prints this peer's id, and accepts every
 * connection offered to it, echoing pings and data, until `signal` fires (Ctrl-C). With `--json`
 * the first line is `{"id": ...}` and every event is one more JSON line.
 */
export async function listenCommand(o: PeerCommandOptions, io: Io, signal: AbortSignal): Promise<number> {
  const options = connectionOptions(o, signal);
  const identity = await loadIdentity(o.identity);
  const rv = await openRendezvous(o, identity, io, signal, 'listen');
  if (typeof rv === 'number') return rv;
  const event = (e: Record<string, unknown>, text: string): void => {
    if (o.json) io.stdout.write(`${JSON.stringify(e)}\n`);
    else io.stderr.write(`${text}\n`);
  };
  const live = new Set<IceConnection>();
  try {
    const punch = await punchOptions(o, rv, signal);
    if (o.json) io.stdout.write(`${JSON.stringify({ id: rv.id, nat: natJson(punch) })}\n`);
    else {
      io.stdout.write(`${rv.id}\n`);
      io.stderr.write(`listening on ${o.rendezvous}${identity.created ? ` (new identity ${identity.path})` : ''}; Ctrl-C stops\n`);
      const nat = natJson(punch);
      if (nat !== null) io.stderr.write(`this side's NAT: mapping ${nat.mapping ?? 'unknown'}, ports ${nat.ports ?? 'unknown'} (birthday punching ${nat.mapping === null ? 'off: unknown mapping' : 'on where it helps'})\n`);
    }
    const stop = acceptPeers(
      rv,
      (conn) => {
        live.add(conn);
        const peer = conn.peerId;
        event({ event: 'connection', peer, sessionId: conn.sessionId }, `connection from ${peer}`);
        conn.on('path', (p) => {
          event(
            { event: 'path', peer, sessionId: conn.sessionId, path: p.path, localCandidate: endpointJson(p.localCandidate), remoteCandidate: endpointJson(p.remoteCandidate), connectMs: Math.round((performance.now() - conn.startedAt) * 100) / 100 },
            `${peer}: ${describePath(p)}`,
          );
        });
        conn.on('data', (d) => conn.send(d));
        conn.on('close', (reason) => {
          live.delete(conn);
          const p = conn.punch;
          if (p?.started === true) event({ event: 'punch', peer, sessionId: conn.sessionId, role: p.role ?? null, outcome: p.outcome ?? null, probesSent: p.probesSent, socketsOpened: p.socketsOpened }, `${peer}: birthday punching as the ${p.role} side: ${p.outcome ?? 'unfinished'} after ${p.probesSent} probes`);
          if (reason === 'bye') event({ event: 'bye', peer, sessionId: conn.sessionId }, `${peer} said bye`);
          else if (reason !== 'closed') event({ event: 'failed', peer, sessionId: conn.sessionId, reason }, `${peer}: ICE failed (${reason})`);
        });
        conn.ready.catch((e: unknown) => {
          if (e instanceof StunClientError && e.code === 'ABORTED') return;
        });
      },
      { ...options, ...(punch === undefined ? {} : { punch }) },
    );
    const ended = await new Promise<'signal' | 'rendezvous'>((resolve) => {
      if (signal.aborted) return resolve('signal');
      signal.addEventListener('abort', () => resolve('signal'), { once: true });
      void rv.closed.then(() => resolve('rendezvous'));
    });
    stop();
    if (ended === 'rendezvous') {
      io.stderr.write(`nat listen: the rendezvous closed the connection (${rv.closeInfo?.code ?? '?'} ${rv.closeInfo?.reason ?? ''})\n`);
      return ExitCode.Failure;
    }
    return ExitCode.Ok;
  } finally {
    await Promise.all([...live].map((c) => c.close('listener stopped')));
    await rv.close();
  }
}

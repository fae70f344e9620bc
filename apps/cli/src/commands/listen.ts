import { type AcceptPeersOptions, type IceConnection, PortMapper, type RendezvousClient, StunClientError, acceptPeers } from '@nat/client';
import type { Io } from '../io.js';
import { type AdmissionFlags, inboundAdmission } from './admission.js';
import { explainFailure, hints } from './ice-failure.js';
import {
  ConnectionPortMap,
  type PeerCommandOptions,
  type PortMapReport,
  closePortMapper,
  connectionOptions,
  describePath,
  describePortMap,
  endpointJson,
  loadIdentity,
  natJson,
  openPortMapper,
  portMapperJson,
  punchOptions,
} from './ping.js';
import { RendezvousNodes, rendezvousUrls } from './rendezvous-nodes.js';
import { type Emit, keepRendezvous, rendezvousToken } from './session.js';

/**
 * {@link acceptPeers} with `--port-map`: each connection gets its own {@link ConnectionPortMap}
 * (its host candidates' ports mapped on the router), whose mappings are removed when the
 * connection closes, so that a listener that runs for days does not fill the router's table.
 */
export function acceptPeersMapped(
  rv: RendezvousClient,
  mapper: PortMapper,
  onConnection: (conn: IceConnection) => void,
  onReport: (peer: string, sessionId: string, r: PortMapReport) => void,
  options: Omit<AcceptPeersOptions, 'perOffer'>,
): () => void {
  return acceptPeers(rv, onConnection, {
    ...options,
    perOffer: ({ from, sessionId }) => {
      const portMap = new ConnectionPortMap(mapper, (r) => onReport(from, sessionId, r));
      return { options: { mappedAddress: portMap.mappedAddress }, onClose: () => void portMap.release() };
    },
  });
}

/**
 * `nat listen`: registers with the rendezvous service, prints this peer's id, and accepts the
 * connections offered to it (within `--max-sessions` and `--max-offers-per-peer`), echoing
 * pings and data, until `signal` fires (Ctrl-C). Registers again when the rendezvous connection
 * drops (open connections stay up); stops when another process registers the same identity.
 * With `--json` the first line is `{"id": ...}` and every event is one more JSON line.
 */
export async function listenCommand(o: PeerCommandOptions & AdmissionFlags, io: Io, signal: AbortSignal): Promise<number> {
  const options = connectionOptions(o, signal);
  const identity = await loadIdentity(o.identity);
  const event: Emit = (e, text) => {
    if (o.json) io.stdout.write(`${JSON.stringify(e)}\n`);
    else io.stderr.write(`${text}\n`);
  };
  const live = new Set<IceConnection>();
  const admit = inboundAdmission(o, event);
  let mapper: PortMapper | PortMapReport | undefined;
  const onConnection = (conn: IceConnection): void => {
    live.add(conn);
    const peer = conn.peerId;
    event({ event: 'connection', peer, sessionId: conn.sessionId }, `connection from ${peer}`);
    conn.on('path', (p) => {
      event(
        {
          event: 'path',
          peer,
          sessionId: conn.sessionId,
          path: p.path,
          localCandidate: endpointJson(p.localCandidate),
          remoteCandidate: endpointJson(p.remoteCandidate),
          connectMs: Math.round((performance.now() - conn.startedAt) * 1000) / 1000,
        },
        `${peer}: ${describePath(p)}`,
      );
    });
    conn.on('data', (d) => conn.send(d));
    conn.on('close', (reason) => {
      live.delete(conn);
      const p = conn.punch;
      if (p?.started === true)
        event(
          {
            event: 'punch',
            peer,
            sessionId: conn.sessionId,
            role: p.role ?? null,
            outcome: p.outcome ?? null,
            probesSent: p.probesSent,
            socketsOpened: p.socketsOpened,
            ...(p.learned === undefined ? {} : { learned: p.learned }),
          },
          `${peer}: birthday punching as the ${p.role} side: ${p.outcome ?? 'unfinished'} after ${p.probesSent} probes${p.learned === undefined ? '' : ` (mapping learned from the checks: ${p.learned})`}`,
        );
      if (reason === 'bye') event({ event: 'bye', peer, sessionId: conn.sessionId }, `${peer} said bye`);
      else if (reason !== 'closed') {
        const d = conn.diagnosis;
        event(
          { event: 'failed', peer, sessionId: conn.sessionId, reason, diagnosis: d, hints: hints(d) },
          explainFailure(`${peer}: ICE failed (${reason})`, d).trimEnd(),
        );
      }
    });
    conn.ready.catch((e: unknown) => {
      if (e instanceof StunClientError && e.code === 'ABORTED') return;
    });
  };
  const onRegistered = async (rv: RendezvousClient, first: boolean): Promise<() => void> => {
    if (first) mapper = await openPortMapper(o);
    // after a reconnection, a failed NAT probe must not end a listener that was working
    const punch = first ? await punchOptions(o, rv, signal) : await punchOptions(o, rv, signal).catch(() => undefined);
    if (first) {
      // portMapping: null without --port-map, {gateway} when the router will be asked, or the failure.
      const portMapping = portMapperJson(mapper);
      // rendezvous: the node registered with (with several, `rendezvous-switched` says when it changes)
      const at = RendezvousNodes.describe(rv);
      if (o.json) io.stdout.write(`${JSON.stringify({ id: rv.id, rendezvous: at, nat: natJson(punch), ...(portMapping === null ? {} : { portMapping }) })}\n`);
      else {
        io.stdout.write(`${rv.id}\n`);
        io.stderr.write(`listening on ${at}${identity.created ? ` (new identity ${identity.path})` : ''}; Ctrl-C stops\n`);
        const nat = natJson(punch);
        if (nat !== null)
          io.stderr.write(
            `this side's NAT: mapping ${nat.mapping ?? 'unknown'}, ports ${nat.ports ?? 'unknown'} (birthday punching ${nat.mapping === null ? 'only where the ICE checks show a symmetric NAT: the probe could not tell the mapping' : 'on where it helps'})\n`,
          );
        if (mapper instanceof PortMapper) io.stderr.write(`port mapping: each connection's ports are mapped on ${mapper.gateway} and unmapped when it ends\n`);
        else if (mapper !== undefined) io.stderr.write(`port mapping: ${describePortMap(mapper)}\n`);
      }
    }
    const acceptOptions: AcceptPeersOptions = { ...options, ...admit, ...(punch === undefined ? {} : { punch }) };
    return mapper instanceof PortMapper
      ? acceptPeersMapped(
          rv,
          mapper,
          onConnection,
          (peer, sessionId, r) => event({ event: 'port-mapping', peer, sessionId, portMapping: r }, `${peer}: port mapping ${describePortMap(r)}`),
          acceptOptions,
        )
      : acceptPeers(rv, onConnection, acceptOptions);
  };
  try {
    return await keepRendezvous({
      urls: rendezvousUrls(o.rendezvous),
      token: rendezvousToken(o.rendezvousToken),
      identity,
      command: 'listen',
      io,
      signal,
      emit: event,
      keeps: 'open connections',
      reconnected: 'rendezvous reconnected',
      onRegistered,
    });
  } finally {
    await Promise.all([...live].map((c) => c.close('listener stopped')));
    // Always: a live mapping's renewal timer would keep the process alive, and the router would keep the port open.
    await closePortMapper(mapper, io, 'listen');
  }
}

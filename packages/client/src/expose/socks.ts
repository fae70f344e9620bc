import { type AddressInfo, type Server, type Socket, createServer } from 'node:net';
import {
  type OutboundTarget,
  SocksCommand,
  SocksReply,
  type TransportAddress,
  encodeSocksMethod,
  encodeSocksReply,
  ipFamily,
  ipToBytes,
  parseSocksGreeting,
  parseSocksRequest,
  socksReplyOf,
  spliceTcp,
} from '@nat/protocol';
import { NatClientError } from '../errors.js';
import { type ExposeOutboundErrorCode, ExposeOutboundError, type OutboundConnection } from './outbound.js';

/** Why {@link startOutboundSocks} could not start. */
export class OutboundSocksError extends NatClientError<'NOT_LOOPBACK' | 'LISTEN'> {
  override readonly name = 'OutboundSocksError';
}

/** What happened to one SOCKS connection. `target` is `host:port` as the SOCKS client asked. */
export type OutboundSocksEvent =
  | { readonly type: 'opened'; readonly target: string; readonly bound: TransportAddress }
  | {
      readonly type: 'refused';
      readonly target: string;
      /** The server's refusal reason, `disconnected`/`bad-reply`, or what this proxy does not serve. */
      readonly reason: ExposeOutboundErrorCode | 'command-not-supported' | 'address-type-not-supported';
      /** The SOCKS reply code sent (RFC 1928 section 6). */
      readonly reply: number;
      readonly message: string;
    }
  | { readonly type: 'closed'; readonly target: string; readonly bytesToPeer: number; readonly bytesFromPeer: number };

/** Options of {@link startOutboundSocks}. */
export interface OutboundSocksInit {
  /** A loopback address (127.0.0.0/8 or ::1): the proxy is for this machine only. */
  readonly host: string;
  /** 0 picks a free port. */
  readonly port: number;
  /** Opens an outbound connection (e.g. an expose tunnel's `openOutbound`). */
  readonly open: (target: OutboundTarget) => Promise<OutboundConnection>;
  readonly onEvent?: (event: OutboundSocksEvent) => void;
  /** A SOCKS client that has not sent its request this long after connecting is closed. Default 10,000 ms. */
  readonly handshakeTimeoutMs?: number;
  /** SOCKS connections at once; more are closed at accept. Default 256. */
  readonly maxConnections?: number;
}

/** A running SOCKS5 proxy (see {@link startOutboundSocks}). */
export interface OutboundSocks {
  readonly address: TransportAddress;
  /** Stops listening and closes every connection. */
  close(): Promise<void>;
}

function isLoopback(host: string): boolean {
  const family = ipFamily(host);
  if (family === 'IPv4') return ipToBytes(host)[0] === 127;
  return family === 'IPv6' && ipToBytes(host).every((b, i) => b === (i === 15 ? 1 : 0));
}

const targetText = (t: OutboundTarget): string => `${t.host.includes(':') ? `[${t.host}]` : t.host}:${t.port}`;

/** One SOCKS connection: negotiation, request, then the outbound connection spliced on. */
function serveSocks(socket: Socket, init: OutboundSocksInit): void {
  const emit = init.onEvent ?? (() => undefined);
  socket.on('error', () => {});
  const timer = setTimeout(() => socket.destroy(), init.handshakeTimeoutMs ?? 10_000);
  timer.unref();
  let buf: Buffer = Buffer.alloc(0);
  let greeted = false;
  const refuse = (target: string, reason: Extract<OutboundSocksEvent, { type: 'refused' }>['reason'], reply: number, message: string): void => {
    emit({ type: 'refused', target, reason, reply, message });
    socket.end(encodeSocksReply(reply as SocksReply));
  };
  const onData = (chunk: Buffer): void => {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    try {
      if (!greeted) {
        const g = parseSocksGreeting(buf);
        if (g === undefined) return;
        greeted = true;
        buf = buf.subarray(g.length);
        const answer = encodeSocksMethod(g.methods);
        if (answer[1] !== 0) return void socket.end(answer);
        socket.write(answer);
      }
      const r = parseSocksRequest(buf);
      if (r === undefined) return;
      socket.off('data', onData);
      socket.pause();
      clearTimeout(timer);
      if (!r.ok) return refuse('?', 'address-type-not-supported', r.reply, r.message);
      const target = targetText(r.target);
      if (r.command !== SocksCommand.connect)
        return refuse(target, 'command-not-supported', SocksReply.commandNotSupported, `command ${r.command} (only CONNECT is served)`);
      void connectThrough(socket, init, r.target, buf.subarray(r.length), refuse);
    } catch {
      socket.destroy(); // not SOCKS5
    }
  };
  socket.on('data', onData);
}

async function connectThrough(
  socket: Socket,
  init: OutboundSocksInit,
  t: OutboundTarget,
  early: Buffer,
  refuse: (target: string, reason: ExposeOutboundErrorCode, reply: number, message: string) => void,
): Promise<void> {
  const target = targetText(t);
  let c: OutboundConnection;
  try {
    c = await init.open(t);
  } catch (e) {
    const code: ExposeOutboundErrorCode = e instanceof ExposeOutboundError ? e.code : 'failed';
    const reply = code === 'disconnected' || code === 'bad-reply' ? SocksReply.generalFailure : socksReplyOf(code);
    return refuse(target, code, reply, (e as Error).message);
  }
  if (socket.destroyed) return void c.stream.destroy();
  socket.write(encodeSocksReply(SocksReply.succeeded, c.bound));
  (init.onEvent ?? (() => undefined))({ type: 'opened', target, bound: c.bound });
  if (early.length > 0) c.stream.write(early);
  spliceTcp(socket, c.stream, {
    onClose: (r) => init.onEvent?.({ type: 'closed', target, bytesToPeer: r.up + early.length, bytesFromPeer: r.down }),
  });
  socket.resume();
}

/**
 * Starts a SOCKS5 proxy (RFC 1928) on a loopback address whose CONNECTs leave through `open`:
 * method "no authentication required" only (a client that does not offer it gets 0xFF), CONNECT
 * only (BIND and UDP ASSOCIATE are answered 0x07), IPv4, IPv6 and host-name targets (a name is
 * passed on as it is, for the far side to resolve). A refusal is answered with the SOCKS reply of
 * its reason (@nat/protocol's `socksReplyOf`), and every connection is reported to `onEvent`.
 * Rejects with OutboundSocksError when `host` is not a loopback address or cannot be bound.
 */
export async function startOutboundSocks(init: OutboundSocksInit): Promise<OutboundSocks> {
  if (!isLoopback(init.host))
    throw new OutboundSocksError('NOT_LOOPBACK', `the SOCKS proxy listens on loopback only (127.0.0.1 or ::1), not ${JSON.stringify(init.host)}`);
  const sockets = new Set<Socket>();
  const server: Server = createServer({ allowHalfOpen: true }, (socket) => {
    if (sockets.size >= (init.maxConnections ?? 256)) return void socket.destroy();
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    serveSocks(socket, init);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(new OutboundSocksError('LISTEN', `cannot listen on ${init.host}:${init.port} (${e.code ?? e.message})`, { cause: e })),
    );
    server.listen(init.port, init.host, () => resolve());
  });
  const a = server.address() as AddressInfo;
  return {
    address: { family: ipFamily(a.address) ?? 'IPv4', address: a.address, port: a.port },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

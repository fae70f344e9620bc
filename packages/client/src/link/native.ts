/**
 * The CommonJS native modules the link is built on, loaded with `createRequire` and typed with
 * just the surface this module uses: udx-native (reliable, congestion-controlled streams over
 * UDP, libudx), noise-handshake with noise-curve-ed (the Noise framework over Ed25519 keys, as
 * Hyperswarm uses it) and sodium-native (libsodium's ChaCha20-Poly1305).
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/** The few members of a udx-native socket this module uses. */
export interface UdxSocket {
  bind(port: number, host: string): void;
  address(): { host: string; family: number; port: number };
  close(): Promise<void>;
  setRecvBufferSize(size: number): void;
  setSendBufferSize(size: number): void;
  on(event: 'error', listener: (error: Error) => void): this;
  /** Datagrams that are not for one of the socket's streams. */
  on(event: 'message', listener: (message: Buffer, from: { host: string; port: number }) => void): this;
  trySend(data: Uint8Array, port: number, host: string): void;
}

/** The few members of a udx-native stream (a streamx Duplex) this module uses. */
export interface UdxStream {
  readonly id: number;
  readonly rtt: number;
  readonly cwnd: number;
  readonly inflight: number;
  readonly retransmits: number;
  readonly destroyed: boolean;
  /** The peer's stream id, once connected. */
  readonly remoteId: number;
  readonly remoteHost: string | null;
  readonly remotePort: number;
  /** The socket the stream is on, once connected (null once closed). */
  readonly socket: UdxSocket | null;
  connect(socket: UdxSocket, remoteId: number, port: number, host: string): void;
  /**
   * Moves a connected stream to another socket of the same udx instance and/or another remote
   * address; packets sent before the move and not yet acknowledged are resent there. Throws while
   * a previous move is not complete; resolves (or returns null at once) when it is.
   */
  changeRemote(socket: UdxSocket, remoteId: number, port: number, host: string): Promise<void> | null;
  write(chunk: Uint8Array): boolean;
  end(): void;
  destroy(error?: Error): void;
  pause(): void;
  resume(): void;
  on(event: 'data', listener: (chunk: Buffer) => void): this;
  on(event: 'end' | 'close' | 'drain' | 'finish' | 'remote-changed', listener: () => void): this;
  on(event: 'error', listener: (error: Error) => void): this;
  once(event: 'drain' | 'close' | 'finish' | 'remote-changed', listener: () => void): this;
  off(event: 'drain' | 'close' | 'finish', listener: () => void): this;
}

/** A udx-native instance: the libuv-backed factory of sockets and streams. */
export interface Udx {
  createSocket(options?: { ipv6Only?: boolean }): UdxSocket;
  createStream(id: number, options?: { firewall?: (socket: UdxSocket, port: number, host: string) => boolean }): UdxStream;
}

/** An Ed25519 key pair in libsodium's layout: 64-byte secret key = seed || public key. */
export interface SodiumKeyPair {
  readonly publicKey: Buffer;
  readonly secretKey: Buffer;
}

/** A noise-handshake handshake state. */
export interface NoiseState {
  initialise(prologue: Uint8Array, remoteStatic?: Uint8Array): void;
  send(payload?: Uint8Array): Buffer;
  recv(message: Uint8Array): Buffer;
  readonly complete: boolean;
  readonly rs: Buffer | null;
  readonly tx: Buffer | null;
  readonly rx: Buffer | null;
}

interface NoiseConstructor {
  new (pattern: string, initiator: boolean, staticKeyPair: SodiumKeyPair, options: { curve: unknown }): NoiseState;
}

interface Sodium {
  crypto_aead_chacha20poly1305_ietf_encrypt(c: Uint8Array, m: Uint8Array, ad: Uint8Array | null, nsec: null, npub: Uint8Array, k: Uint8Array): number;
  crypto_aead_chacha20poly1305_ietf_decrypt(m: Uint8Array, nsec: null, c: Uint8Array, ad: Uint8Array | null, npub: Uint8Array, k: Uint8Array): number;
  crypto_generichash(out: Uint8Array, input: Uint8Array, key?: Uint8Array): void;
  readonly crypto_secretstream_xchacha20poly1305_STATEBYTES: number;
  readonly crypto_secretstream_xchacha20poly1305_HEADERBYTES: number;
  readonly crypto_secretstream_xchacha20poly1305_ABYTES: number;
  readonly crypto_secretstream_xchacha20poly1305_TAG_MESSAGE: number;
  readonly crypto_secretstream_xchacha20poly1305_TAG_FINAL: number;
  crypto_secretstream_xchacha20poly1305_init_push(state: Uint8Array, header: Uint8Array, key: Uint8Array): void;
  crypto_secretstream_xchacha20poly1305_init_pull(state: Uint8Array, header: Uint8Array, key: Uint8Array): void;
  crypto_secretstream_xchacha20poly1305_push(state: Uint8Array, c: Uint8Array, m: Uint8Array, ad: Uint8Array | null, tag: number): number;
  /** Throws when the record does not authenticate. */
  crypto_secretstream_xchacha20poly1305_pull(state: Uint8Array, m: Uint8Array, tag: Uint8Array, c: Uint8Array, ad: Uint8Array | null): number;
}

const UdxClass = require('udx-native') as new () => Udx;
let shared: Udx | undefined;
let forShims: Udx | undefined;

/** The process's one udx-native instance (stream ids are unique within it). */
export function udx(): Udx {
  shared ??= new UdxClass();
  return shared;
}

/**
 * A second instance for the links' shim sockets: their stream table stays empty, so every
 * datagram they receive (udx packets addressed to the peer's stream ids) comes out as `message`.
 */
export function shimUdx(): Udx {
  forShims ??= new UdxClass();
  return forShims;
}

const SOCKET_BUFFER = 1 << 20;

/**
 * A socket of `instance` bound to `host` (port 0) with 1 MiB send and receive buffers, whose
 * send errors (unreachable routes) are not fatal. Throws when `host` cannot be bound, after
 * closing the half-made socket.
 */
export function bindUdxSocket(instance: Udx, host: string): UdxSocket {
  const socket = instance.createSocket();
  try {
    socket.bind(0, host);
  } catch (error) {
    void socket.close().catch(() => {});
    throw error;
  }
  socket.setRecvBufferSize(SOCKET_BUFFER);
  socket.setSendBufferSize(SOCKET_BUFFER);
  socket.on('error', () => {});
  return socket;
}

/** noise-handshake's handshake state constructor. */
export const Noise = require('noise-handshake') as NoiseConstructor;
/** noise-curve-ed: Noise DH over Ed25519 keys. */
export const curveEd = require('noise-curve-ed') as { generateKeyPair(seed?: Uint8Array): SodiumKeyPair };
/** libsodium (sodium-native). */
export const sodium = require('sodium-native') as Sodium;

/**
 * A raw TURN client for the server's error-path and security tests: it builds every request by
 * hand with @nat/protocol, so these tests do not depend on @nat/client's TURN client.
 */
import { createSocket, type Socket } from 'node:dgram';
import {
  Attr,
  type AttributeEntry,
  StunClass,
  type StunMessage,
  type TransportAddress,
  attr,
  decodeStunMessage,
  encodeStunMessage,
  longTermKey,
} from '@nat/protocol';

export class RawTurn {
  readonly socket: Socket;
  readonly inbox: Buffer[] = [];
  realm = '';
  nonce = '';
  key: Uint8Array = new Uint8Array(0);

  private constructor(
    socket: Socket,
    readonly server: TransportAddress,
    readonly username: string,
    readonly password: string,
  ) {
    this.socket = socket;
    socket.on('message', (m) => this.inbox.push(m));
  }

  static async open(server: TransportAddress, username: string, password: string, localAddress = '127.0.0.1'): Promise<RawTurn> {
    const socket = createSocket(server.family === 'IPv6' ? 'udp6' : 'udp4');
    await new Promise<void>((r) => socket.bind(0, localAddress, () => r()));
    return new RawTurn(socket, server, username, password);
  }

  get local(): TransportAddress {
    const a = this.socket.address();
    return { family: a.family === 'IPv6' ? 'IPv6' : 'IPv4', address: a.address, port: a.port };
  }

  sendRaw(bytes: Uint8Array, to: TransportAddress = this.server): void {
    this.socket.send(bytes, to.port, to.address);
  }

  /** Waits for a STUN message matching `pred` (removing it from the inbox). */
  async waitFor(pred: (m: StunMessage, raw: Buffer) => boolean, timeoutMs = 1500): Promise<StunMessage | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      for (let i = 0; i < this.inbox.length; i++) {
        const raw = this.inbox[i]!;
        let m: StunMessage;
        try {
          m = decodeStunMessage(raw);
        } catch {
          continue;
        }
        if (pred(m, raw)) {
          this.inbox.splice(i, 1);
          return m;
        }
      }
      if (Date.now() > deadline) return undefined;
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  /** Sends a request (authenticated once realm/nonce are known) and returns the response. */
  async request(method: number, attributes: AttributeEntry[], options: { auth?: boolean; transactionId?: Uint8Array } = {}): Promise<StunMessage> {
    const auth = options.auth ?? this.nonce !== '';
    const all = auth ? [...attributes, attr(Attr.Username, this.username), attr(Attr.Realm, this.realm), attr(Attr.Nonce, this.nonce)] : attributes;
    const bytes = encodeStunMessage(
      { method, class: StunClass.Request, attributes: all, ...(options.transactionId ? { transactionId: options.transactionId } : {}) },
      auth ? { integrity: this.key } : {},
    );
    const tid = Buffer.from(bytes.subarray(8, 20)).toString('hex');
    this.sendRaw(bytes);
    const m = await this.waitFor((r) => Buffer.from(r.transactionId).toString('hex') === tid);
    if (!m) throw new Error(`no response to method ${method}`);
    return m;
  }

  /** Unauthenticated request, then learns realm and nonce from the 401. */
  async learnNonce(method: number, attributes: AttributeEntry[]): Promise<StunMessage> {
    const r = await this.request(method, attributes, { auth: false });
    const realm = r.get(Attr.Realm);
    const nonce = r.get(Attr.Nonce);
    if (realm !== undefined && nonce !== undefined) {
      this.realm = realm;
      this.nonce = nonce;
      this.key = longTermKey({ username: this.username, realm, password: this.password });
    }
    return r;
  }

  /** Allocate with the 401 dance. */
  async allocate(extra: AttributeEntry[] = [attr(Attr.RequestedTransport, 17)]): Promise<StunMessage> {
    if (this.nonce === '') await this.learnNonce(0x003, extra);
    return this.request(0x003, extra);
  }

  close(): void {
    this.socket.close();
  }
}

export const isError = (m: StunMessage | undefined): boolean => m?.class === StunClass.ErrorResponse;
export const codeOf = (m: StunMessage | undefined): number | undefined => m?.get(Attr.ErrorCode)?.code;

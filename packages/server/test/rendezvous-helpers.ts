/** Test helpers of the rendezvous tests: Ed25519 identities and a bare WebSocket peer. */
import { type KeyObject, generateKeyPairSync, sign } from 'node:crypto';
import { type SignallingMessage, peerIdFromPublicKey, registerSigningPayload } from '@nat/protocol';
import WebSocket from 'ws';

export interface Identity {
  privateKey: KeyObject;
  raw: Buffer;
  b64: string;
  id: string;
}

export function identity(): Identity {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const b64 = publicKey.export({ format: 'jwk' }).x!;
  const raw = Buffer.from(b64, 'base64url');
  return { privateKey, raw, b64, id: peerIdFromPublicKey(raw) };
}

/** A bare test peer: the raw WebSocket plus a queue of the messages it received. */
export class Peer {
  readonly inbox: SignallingMessage[] = [];
  readonly texts: string[] = [];
  #waiters: (() => void)[] = [];
  closed: Promise<{ code: number; reason: string }>;
  closeInfo: { code: number; reason: string } | undefined;
  constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      const text = (data as Buffer).toString('utf8');
      this.texts.push(text);
      this.inbox.push(JSON.parse(text) as SignallingMessage);
      for (const w of this.#waiters.splice(0)) w();
    });
    this.closed = new Promise((resolve) =>
      ws.on('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString() };
        resolve(this.closeInfo);
        for (const w of this.#waiters.splice(0)) w();
      }),
    );
    ws.on('error', () => {});
  }
  static async open(url: string, options: WebSocket.ClientOptions = {}): Promise<Peer> {
    const ws = new WebSocket(url, options);
    const peer = new Peer(ws);
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    return peer;
  }
  /** The first received message (after `from`) matching `pred`, waiting up to `ms`. */
  async next<T extends SignallingMessage['type']>(type: T, ms = 2000, from = 0): Promise<Extract<SignallingMessage, { type: T }>> {
    const deadline = Date.now() + ms;
    for (;;) {
      const found = this.inbox.slice(from).find((m) => m.type === type);
      if (found) return found as Extract<SignallingMessage, { type: T }>;
      if (this.closeInfo || Date.now() > deadline) throw new Error(`no ${type} (closed: ${JSON.stringify(this.closeInfo)}; got ${JSON.stringify(this.inbox)})`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.max(1, deadline - Date.now()));
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }
  send(message: unknown): void {
    this.ws.send(typeof message === 'string' ? message : JSON.stringify(message));
  }
  /** Answers the challenge with `me`'s key; resolves with the reply (registered or error). */
  async register(me: Identity, options: { signer?: KeyObject; signedId?: string; id?: string } = {}): Promise<SignallingMessage> {
    const { nonce } = await this.next('challenge');
    const signature = sign(null, registerSigningPayload(nonce, options.signedId ?? me.id), options.signer ?? me.privateKey).toString('base64url');
    this.send({ v: 1, type: 'register', id: options.id ?? 'reg-1', publicKey: me.b64, signature });
    for (;;) {
      const reply = this.inbox.find((m) => m.type === 'registered' || m.type === 'error');
      if (reply) return reply;
      await this.next('registered', 2000).catch(() => undefined);
      if (this.closeInfo && !this.inbox.some((m) => m.type === 'registered' || m.type === 'error')) throw new Error('closed');
    }
  }
}

import { Attr, StunClass, StunMethod, attr, decodeStunMessage, encodeStunMessage, errorCode } from '@nat/protocol';
import { describe, expect, it } from 'vitest';
import { StunTransaction, TransactionManager, encodeBindingRequest, transactionBudget } from '../src/index.js';

/** A success response to `request` (same id and method), modern or classic like the request. */
function responseTo(request: Uint8Array, cls: StunClass = StunClass.SuccessResponse, fingerprint = false): Uint8Array {
  const req = decodeStunMessage(request);
  return encodeStunMessage(
    {
      method: req.method,
      class: cls,
      transactionId: req.transactionId,
      classic: req.classic,
      attributes:
        cls === StunClass.ErrorResponse
          ? [attr(Attr.ErrorCode, errorCode(400))]
          : [attr(Attr.XorMappedAddress, { family: 'IPv4', address: '192.0.2.1', port: 4242 })],
    },
    { fingerprint },
  );
}

/** Drives a transaction on a virtual clock: the times at which it transmits, and when it ends. */
function run(t: StunTransaction, until: number, onTick?: (now: number) => void): { sends: number[]; endedAt: number | undefined } {
  const sends: number[] = [];
  let now = 0;
  t.start(now);
  for (;;) {
    for (let b = t.pollTransmit(now); b; b = t.pollTransmit(now)) sends.push(now);
    onTick?.(now);
    const next = t.pollTimeout();
    if (next === undefined || next > until) break;
    now = next;
    t.handleTimeout(now);
  }
  return { sends, endedAt: t.state === 'done' ? now : undefined };
}

describe('StunTransaction (RFC 8489 section 6.2.1, virtual clock)', () => {
  it('retransmits at 0, 500, 1500, 3500, 7500, 15500, 31500 ms and times out at 39500 ms', () => {
    const t = new StunTransaction({ request: encodeBindingRequest() });
    const { sends, endedAt } = run(t, 100_000);
    expect(sends).toEqual([0, 500, 1500, 3500, 7500, 15500, 31500]);
    expect(endedAt).toBe(39_500);
    expect(t.result).toEqual({ kind: 'timeout', transmissions: 7 });
    expect(t.pollTimeout()).toBeUndefined();
    expect(transactionBudget(undefined)).toBe(39_500);
  });

  it('honours RTO, Rc and Rm settings', () => {
    const t = new StunTransaction({ request: encodeBindingRequest(), rto: 100, rc: 3, rm: 2 });
    const { sends, endedAt } = run(t, 100_000);
    expect(sends).toEqual([0, 100, 300]);
    expect(endedAt).toBe(500);
    expect(transactionBudget({ rto: 100, rc: 3, rm: 2 })).toBe(500);
    const one = new StunTransaction({ request: encodeBindingRequest(), rto: 100, rc: 1, rm: 16 });
    expect(run(one, 100_000)).toEqual({ sends: [0], endedAt: 1600 });
  });

  it('does not retransmit over a reliable transport and times out after Ti (39.5 s by default)', () => {
    const t = new StunTransaction({ request: encodeBindingRequest(), reliable: true });
    expect(run(t, 100_000)).toEqual({ sends: [0], endedAt: 39_500 });
    const short = new StunTransaction({ request: encodeBindingRequest(), reliable: true, ti: 1234 });
    expect(run(short, 100_000)).toEqual({ sends: [0], endedAt: 1234 });
    expect(transactionBudget({ reliable: true, ti: 1234 })).toBe(1234);
  });

  it('stops retransmitting when a response arrives mid-way, with the RTT from the last send', () => {
    const request = encodeBindingRequest();
    const t = new StunTransaction({ request });
    const response = decodeStunMessage(responseTo(request));
    const { sends, endedAt } = run(t, 100_000, (now) => {
      if (now === 1500) expect(t.handleResponse(response, 1600, { family: 'IPv4', address: '192.0.2.9', port: 3478 })).toBe(true);
    });
    expect(sends).toEqual([0, 500, 1500]);
    expect(endedAt).toBe(1500); // the loop's clock; the response came at 1600
    expect(t.result).toMatchObject({ kind: 'response', rttMs: 100, transmissions: 3, from: { port: 3478 } });
    expect(t.pollTransmit(2000)).toBeUndefined();
    expect(t.pollTimeout()).toBeUndefined();
  });

  it('ignores a response with a different transaction id, a request, another method, and a bad FINGERPRINT', () => {
    const request = encodeBindingRequest();
    const t = new StunTransaction({ request });
    t.start(0);
    expect(t.pollTransmit(0)).toBe(request);
    const other = decodeStunMessage(responseTo(encodeBindingRequest()));
    expect(t.handleResponse(other, 10)).toBe(false);
    const req = decodeStunMessage(request);
    const asRequest = decodeStunMessage(encodeStunMessage({ method: StunMethod.Binding, class: StunClass.Request, transactionId: req.transactionId }));
    expect(t.handleResponse(asRequest, 10)).toBe(false);
    const otherMethod = decodeStunMessage(
      encodeStunMessage({ method: StunMethod.Allocate, class: StunClass.SuccessResponse, transactionId: req.transactionId }),
    );
    expect(t.handleResponse(otherMethod, 10)).toBe(false);
    const fp = responseTo(request, StunClass.SuccessResponse, true);
    fp[fp.length - 1] = fp[fp.length - 1]! ^ 0xff;
    expect(t.handleResponse(decodeStunMessage(fp), 10)).toBe(false);
    expect(t.state).toBe('running');
    // and a good one with a FINGERPRINT is taken
    expect(t.handleResponse(decodeStunMessage(responseTo(request, StunClass.SuccessResponse, true)), 20)).toBe(true);
  });

  it('takes error responses as responses', () => {
    const request = encodeBindingRequest();
    const t = new StunTransaction({ request });
    t.start(0);
    expect(t.handleResponse(decodeStunMessage(responseTo(request, StunClass.ErrorResponse)), 5)).toBe(true);
    expect(t.result?.kind).toBe('response');
  });

  it('matches classic (16-byte id) responses to classic requests only', () => {
    const classicRequest = encodeBindingRequest({ classic: true });
    expect(classicRequest.length).toBe(20);
    const t = new StunTransaction({ request: classicRequest });
    expect(t.classic).toBe(true);
    t.start(0);
    const classicResponse = decodeStunMessage(responseTo(classicRequest));
    expect(classicResponse.classic).toBe(true);
    // A modern response whose 12-byte id equals the classic id's last 12 bytes does not match.
    const modern = decodeStunMessage(
      encodeStunMessage({ method: StunMethod.Binding, class: StunClass.SuccessResponse, transactionId: classicRequest.subarray(8, 20) }),
    );
    expect(t.handleResponse(modern, 1)).toBe(false);
    expect(t.handleResponse(classicResponse, 2)).toBe(true);
  });

  it('cancel ends the transaction and nothing more is sent', () => {
    const t = new StunTransaction({ request: encodeBindingRequest() });
    t.start(0);
    t.cancel();
    expect(t.pollTransmit(0)).toBeUndefined();
    expect(t.result).toEqual({ kind: 'cancelled', transmissions: 1 });
  });

  it('rejects a non-request and bad timing', () => {
    const response = responseTo(encodeBindingRequest());
    expect(() => new StunTransaction({ request: response })).toThrow(RangeError);
    expect(() => new StunTransaction({ request: encodeBindingRequest(), rto: 0 })).toThrow(RangeError);
    expect(() => new StunTransaction({ request: encodeBindingRequest(), rc: 1.5 })).toThrow(RangeError);
    expect(() => new StunTransaction({ request: new Uint8Array(3) })).toThrow(/shorter than a STUN header/);
  });
});

describe('TransactionManager', () => {
  it('runs many transactions on one clock, routing responses by transaction id', () => {
    const m = new TransactionManager({ rto: 100, rc: 3, rm: 2 });
    const dest = { family: 'IPv4' as const, address: '192.0.2.1', port: 3478 };
    const a = encodeBindingRequest();
    const b = encodeBindingRequest();
    const c = encodeBindingRequest({ classic: true });
    m.start(a, dest, 0);
    m.start(b, dest, 50);
    m.start(c, dest, 50, { rto: 1000, rc: 1, rm: 1 });
    expect(() => m.start(a, dest, 60)).toThrow(/already running/);
    const sent: [number, string][] = [];
    const drain = (now: number): void => {
      for (let tx = m.pollTransmit(now); tx; tx = m.pollTransmit(now)) sent.push([now, tx.transaction.key]);
    };
    drain(50);
    expect(m.pollTimeout()).toBe(100);
    m.handleTimeout(100);
    drain(100);
    // b's response arrives at 120
    const done = m.handleMessage(decodeStunMessage(responseTo(b)), 120, dest);
    expect(done?.key).toBe(decodeStunMessage(b).transactionKey);
    expect(m.pollCompleted()).toBe(done);
    expect(m.handleMessage(decodeStunMessage(responseTo(b)), 121)).toBeUndefined(); // late duplicate
    for (let now = m.pollTimeout(); now !== undefined && now <= 10_000; now = m.pollTimeout()) {
      m.handleTimeout(now);
      drain(now);
    }
    const keyA = decodeStunMessage(a).transactionKey;
    const keyB = decodeStunMessage(b).transactionKey;
    const keyC = decodeStunMessage(c).transactionKey;
    expect(sent.filter(([, k]) => k === keyA).map(([t]) => t)).toEqual([50, 100, 300]);
    expect(sent.filter(([, k]) => k === keyB).map(([t]) => t)).toEqual([50]);
    expect(sent.filter(([, k]) => k === keyC).map(([t]) => t)).toEqual([50]);
    const finished = [m.pollCompleted(), m.pollCompleted()];
    expect(finished.map((t) => [t?.key, t?.result?.kind])).toEqual([
      [keyA, 'timeout'],
      [keyC, 'timeout'],
    ]);
    expect(m.size).toBe(0);
    expect(m.pollTimeout()).toBeUndefined();
  });

  it('cancel completes the transaction and ignores requests and indications', () => {
    const m = new TransactionManager();
    const a = encodeBindingRequest();
    const t = m.start(a, undefined, 0);
    expect(m.handleMessage(decodeStunMessage(a), 1)).toBeUndefined();
    expect(m.cancel(t.key)).toBe(true);
    expect(m.cancel(t.key)).toBe(false);
    expect(m.pollCompleted()?.result?.kind).toBe('cancelled');
    expect(m.pollTransmit(0)).toBeUndefined();
  });
});

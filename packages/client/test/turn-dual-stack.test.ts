// connectDualStack (turn/dual-stack.ts): an Allocate with ADDITIONAL-ADDRESS-FAMILY (RFC 8656
// section 7.1) for both relayed families; a server that refuses it with 440 is asked again
// without the attribute. A UDP socket stands in for a server that cannot relay IPv6 (our own
// server answers such a request with success and ADDRESS-ERROR-CODE instead: turn-core tests).
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { Attr, StunClass, StunMethod, attr, decodeStunMessage, encodeStunMessage } from '@nat/protocol';
import { describe, expect, it } from 'vitest';
import { StunClientError, connectDualStack } from '../src/index.js';

describe('connectDualStack', () => {
  it('asks for both families, and again without ADDITIONAL-ADDRESS-FAMILY after a 440', async () => {
    const server = createSocket('udp4');
    server.bind(0, '127.0.0.1');
    await once(server, 'listening');
    const seen: boolean[] = [];
    server.on('message', (bytes, rinfo) => {
      const m = decodeStunMessage(bytes);
      if (m.method !== StunMethod.Allocate) return;
      const additional = m.get(Attr.AdditionalAddressFamily) !== undefined;
      seen.push(additional);
      // 440 to the dual-stack request; 486 (quota) to the retry, to end the test without credentials
      const code = additional ? 440 : 486;
      const reply = encodeStunMessage({
        method: StunMethod.Allocate,
        class: StunClass.ErrorResponse,
        transactionId: m.transactionId,
        attributes: [attr(Attr.ErrorCode, { code, reason: additional ? 'Address Family not Supported' : 'Allocation Quota Reached' })],
      });
      server.send(reply, rinfo.port, rinfo.address);
    });
    try {
      const err = await connectDualStack({ server: `127.0.0.1:${server.address().port}`, username: 'u', password: 'p', connectTimeoutMs: 5000 }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(StunClientError);
      expect((err as StunClientError).stunErrorCode).toBe(486);
      expect(seen).toEqual([true, false]);
    } finally {
      server.close();
    }
  });
});

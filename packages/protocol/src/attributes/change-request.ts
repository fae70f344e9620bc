import { type AttributeSpec, expectLength, readU32, writeU32 } from './spec.js';

/** The two flags of CHANGE-REQUEST. */
export interface ChangeRequestValue {
  /** Flag A: answer from the other IP address. */
  readonly changeIp: boolean;
  /** Flag B: answer from the other port. */
  readonly changePort: boolean;
}

/**
 * CHANGE-REQUEST (0x0003): RFC 3489 section 11.2.4, kept by RFC 5780 section 7.2. A 32-bit value
 * whose bit 0x4 asks for a change of IP and bit 0x2 for a change of port.
 */
export const changeRequestAttribute: AttributeSpec<ChangeRequestValue> = {
  type: 0x0003,
  name: 'CHANGE-REQUEST',
  rfc: 'RFC 5780 section 7.2',
  decode(m, o, length) {
    expectLength(this.name, length, 4);
    const v = readU32(m, o);
    return { changeIp: (v & 0x4) !== 0, changePort: (v & 0x2) !== 0 };
  },
  encodedLength() {
    return 4;
  },
  write(value, m, o) {
    writeU32(m, o, (value.changeIp ? 0x4 : 0) | (value.changePort ? 0x2 : 0));
  },
};

/** Every fuzz target of @nat/protocol but the STUN decoder (fuzz/stun-properties.ts). */
import type { FuzzTarget } from './harness.js';
import { exposeControlTarget, yamuxReaderTarget, yamuxSessionTarget } from './targets-expose.js';
import { channelDataTarget, rfc4571Target, stunStreamTarget } from './targets-framing.js';
import { natPmpTarget, pcpTarget, ssdpTarget } from './targets-portmap.js';
import { iceCandidateTarget, signallingTarget } from './targets-text.js';

export const TARGETS: readonly FuzzTarget[] = [
  channelDataTarget,
  stunStreamTarget,
  rfc4571Target,
  yamuxReaderTarget,
  yamuxSessionTarget,
  exposeControlTarget,
  signallingTarget,
  iceCandidateTarget,
  pcpTarget,
  natPmpTarget,
  ssdpTarget,
];

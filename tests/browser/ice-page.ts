/**
 * The page Chromium loads for the ICE interop test: one inline script (plain JavaScript text, so
 * that no transpiler helper of the Node side leaks into the browser) defining three functions.
 *
 * - `iceOffer()`: a fresh RTCPeerConnection with no ICE servers, a data channel, an offer set as
 *   the local description; resolves to the offer's SDP. Trickled candidates are collected.
 * - `iceCandidates()`: the candidates trickled so far and whether gathering ended (null candidate).
 * - `iceAnswer(sdp, timeoutMs)`: applies the answer, waits for iceConnectionState `connected`
 *   or `completed` (or `failed`, or the timeout), lets the state settle briefly, and resolves to
 *   a BrowserIceResult (ice-types.ts) read from getStats().
 */

const SCRIPT = String.raw`
'use strict';
var state = null;
window.iceOffer = async function iceOffer() {
  if (state && state.pc) state.pc.close();
  var pc = new RTCPeerConnection({ iceServers: [] });
  state = { pc: pc, candidates: [], gatheringDone: false, iceStates: [], t0: 0 };
  var s = state;
  pc.onicecandidate = function (e) {
    if (e.candidate && e.candidate.candidate) s.candidates.push(e.candidate.candidate);
    else s.gatheringDone = true;
  };
  pc.createDataChannel('interop');
  var offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
  return pc.localDescription.sdp;
};
window.iceCandidates = function iceCandidates() {
  return { candidates: state.candidates.slice(), gatheringDone: state.gatheringDone };
};
window.iceAnswer = async function iceAnswer(sdp, timeoutMs) {
  var s = state;
  var pc = s.pc;
  s.t0 = performance.now();
  var since = function () { return Math.round(performance.now() - s.t0); };
  var done;
  var finished = new Promise(function (resolve) { done = resolve; });
  pc.oniceconnectionstatechange = function () {
    var st = pc.iceConnectionState;
    s.iceStates.push({ state: st, at: since() });
    if (st === 'connected' || st === 'completed' || st === 'failed') done();
  };
  await pc.setRemoteDescription({ type: 'answer', sdp: sdp });
  var timer = setTimeout(done, timeoutMs);
  await finished;
  clearTimeout(timer);
  // a moment for the nominated pair to show in the stats
  await new Promise(function (r) { setTimeout(r, 300); });
  var stats = await pc.getStats();
  var pair = null;
  stats.forEach(function (r) {
    if (r.type === 'transport' && r.selectedCandidatePairId && stats.get(r.selectedCandidatePairId)) pair = stats.get(r.selectedCandidatePairId);
  });
  if (!pair) stats.forEach(function (r) { if (!pair && r.type === 'candidate-pair' && r.nominated && r.state === 'succeeded') pair = r; });
  var cand = function (id) {
    var c = id ? stats.get(id) : null;
    if (!c) return null;
    return { candidateType: c.candidateType || null, address: c.address || c.ip || null, port: typeof c.port === 'number' ? c.port : null, protocol: c.protocol || null };
  };
  var num = function (v) { return typeof v === 'number' ? v : null; };
  var selected = pair ? {
    state: pair.state || null,
    nominated: typeof pair.nominated === 'boolean' ? pair.nominated : null,
    requestsSent: num(pair.requestsSent),
    requestsReceived: num(pair.requestsReceived),
    responsesSent: num(pair.responsesSent),
    responsesReceived: num(pair.responsesReceived),
    local: cand(pair.localCandidateId),
    remote: cand(pair.remoteCandidateId),
  } : null;
  return { iceStates: s.iceStates.slice(), finalIceState: pc.iceConnectionState, connectionState: pc.connectionState, selected: selected };
};
window.iceState = function iceState() { return state.pc.iceConnectionState; };
window.iceClose = function iceClose() { if (state && state.pc) state.pc.close(); };
`;

/** The whole page. */
export const ICE_PAGE_HTML = `<!doctype html><html><head><meta charset="utf-8"><title>ice interop</title></head><body><script>${SCRIPT}</script></body></html>`;

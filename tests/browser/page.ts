/**
 * The page the browser loads: no external resources, one inline script that defines
 * `window.runExchange(cfg)`. Kept as plain JavaScript text (not a function handed to
 * page.evaluate) so that no transpiler helper of the Node side leaks into the browser.
 *
 * runExchange makes two RTCPeerConnections in the page, both with the TURN server as their only
 * ICE server and `iceTransportPolicy: 'relay'`, trickles candidates between them, opens a data
 * channel, exchanges small messages both ways plus one large message each way, measures
 * ping-pong round trips, and reads the selected candidate pair of each side from getStats().
 * It resolves to a PageResult (types.ts).
 *
 * Candidates must be trickled: in a loopback-only namespace Chromium's iceGatheringState stays
 * 'gathering' long after the relay candidate arrived (seen with coturn as the server too), so
 * waiting for 'complete' before sending an offer would hang.
 */

/** Input of `window.runExchange`. */
export interface PageConfig {
  readonly url: string;
  readonly username: string;
  readonly credential: string;
  /** Small messages sent each way. */
  readonly messages: number;
  /** Length of the large message sent each way (SCTP fragments it into many packets). */
  readonly largeLength: number;
  readonly pingRounds: number;
  /** The exchange gives up after this long. */
  readonly timeoutMs: number;
}

const SCRIPT = String.raw`
'use strict';
window.runExchange = async function runExchange(cfg) {
  var t0 = performance.now();
  var since = function () { return Math.round(performance.now() - t0); };
  var timings = { firstRelayCandidate: null, iceConnected: null, channelOpen: null, messagesDone: null };
  var iceErrors = [];
  var gathered = { a: [], b: [] };
  var rtc = {
    iceServers: [{ urls: cfg.url, username: cfg.username, credential: cfg.credential }],
    iceTransportPolicy: 'relay',
  };
  var a = new RTCPeerConnection(rtc);
  var b = new RTCPeerConnection(rtc);
  var deadline = new Promise(function (_, reject) {
    setTimeout(function () { reject(new Error('page: exchange timed out after ' + cfg.timeoutMs + ' ms')); }, cfg.timeoutMs);
  });
  var within = function (p) { return Promise.race([p, deadline]); };

  var candInfo = function (c) {
    return {
      candidateType: c.candidateType || c.type || null,
      protocol: c.protocol || null,
      address: c.address || null,
      port: typeof c.port === 'number' ? c.port : null,
      relayProtocol: c.relayProtocol || null,
      url: c.url || null,
    };
  };

  // Trickle ICE, queueing candidates until the other side has its remote description.
  var pending = { a: [], b: [] };
  var flush = function (pc, name) {
    var q = pending[name];
    pending[name] = [];
    q.forEach(function (c) { pc.addIceCandidate(c).catch(function (e) { iceErrors.push({ pc: name, url: '', errorCode: -1, errorText: 'addIceCandidate: ' + e }); }); });
  };
  var wire = function (from, fromName, to, toName) {
    from.onicecandidate = function (e) {
      if (!e.candidate || !e.candidate.candidate) return;
      gathered[fromName].push(candInfo(e.candidate));
      if (timings.firstRelayCandidate === null && e.candidate.type === 'relay') timings.firstRelayCandidate = since();
      pending[toName].push(e.candidate);
      if (to.remoteDescription) flush(to, toName);
    };
    from.onicecandidateerror = function (e) {
      iceErrors.push({ pc: fromName, url: e.url || '', errorCode: e.errorCode, errorText: e.errorText || '' });
    };
  };
  wire(a, 'a', b, 'b');
  wire(b, 'b', a, 'a');

  var connected = function (pc) {
    return new Promise(function (resolve) {
      var check = function () {
        if (pc.iceConnectionState === 'connected' || pc.iceConnectionState === 'completed') resolve();
      };
      pc.addEventListener('iceconnectionstatechange', check);
      check();
    });
  };
  var opened = function (ch) {
    return new Promise(function (resolve, reject) {
      if (ch.readyState === 'open') return resolve(ch);
      ch.onopen = function () { resolve(ch); };
      ch.onerror = function (e) { reject(new Error('data channel error: ' + (e.error && e.error.message))); };
    });
  };

  try {
    var chA = a.createDataChannel('chat', { ordered: true });
    var chBPromise = new Promise(function (resolve) { b.ondatachannel = function (e) { resolve(e.channel); }; });

    var offer = await a.createOffer();
    await a.setLocalDescription(offer);
    await b.setRemoteDescription(offer);
    flush(b, 'b');
    var answer = await b.createAnswer();
    await b.setLocalDescription(answer);
    await a.setRemoteDescription(answer);
    flush(a, 'a');

    await within(Promise.all([connected(a), connected(b)]));
    timings.iceConnected = since();
    var chs = await within(Promise.all([opened(chA), chBPromise.then(opened)]));
    var chB = chs[1];
    timings.channelOpen = since();

    var large = '';
    for (var i = 0; large.length < cfg.largeLength; i++) large += String(i % 10);
    large = large.slice(0, cfg.largeLength);

    var receivedByA = [];
    var receivedByB = [];
    var largeOkAtA = false;
    var largeOkAtB = false;
    var pongWaiters = [];
    var doneA, doneB;
    var allAtA = new Promise(function (r) { doneA = r; });
    var allAtB = new Promise(function (r) { doneB = r; });
    var check = function () {
      if (receivedByA.length >= cfg.messages && largeOkAtA) doneA();
      if (receivedByB.length >= cfg.messages && largeOkAtB) doneB();
    };
    chB.onmessage = function (e) {
      var d = e.data;
      if (typeof d === 'string' && d.indexOf('ping ') === 0) { chB.send('pong ' + d.slice(5)); return; }
      if (typeof d === 'string' && d.length === cfg.largeLength) largeOkAtB = d === large;
      else receivedByB.push(d);
      check();
    };
    chA.onmessage = function (e) {
      var d = e.data;
      if (typeof d === 'string' && d.indexOf('pong ') === 0) { var w = pongWaiters.shift(); if (w) w(); return; }
      if (typeof d === 'string' && d.length === cfg.largeLength) largeOkAtA = d === large;
      else receivedByA.push(d);
      check();
    };
    for (var m = 0; m < cfg.messages; m++) {
      chA.send('a->b #' + m);
      chB.send('b->a #' + m);
    }
    chA.send(large);
    chB.send(large);
    await within(Promise.all([allAtA, allAtB]));
    timings.messagesDone = since();

    var rtts = [];
    for (var r = 0; r < cfg.pingRounds; r++) {
      var sent = performance.now();
      var pong = new Promise(function (resolve) { pongWaiters.push(resolve); });
      chA.send('ping ' + r);
      await within(pong);
      rtts.push(performance.now() - sent);
    }
    rtts.sort(function (x, y) { return x - y; });
    var rttMedianMs = rtts.length ? Math.round(rtts[Math.floor(rtts.length / 2)] * 100) / 100 : null;

    var selectedPair = async function (pc) {
      var stats = await pc.getStats();
      var pair = null;
      var via = 'transport';
      stats.forEach(function (s) {
        if (s.type === 'transport' && s.selectedCandidatePairId && stats.get(s.selectedCandidatePairId)) pair = stats.get(s.selectedCandidatePairId);
      });
      if (!pair) {
        via = 'nominated';
        stats.forEach(function (s) { if (!pair && s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s; });
      }
      if (!pair) return null;
      return {
        via: via,
        state: pair.state,
        nominated: !!pair.nominated,
        local: candInfo(stats.get(pair.localCandidateId) || {}),
        remote: candInfo(stats.get(pair.remoteCandidateId) || {}),
        currentRoundTripTime: typeof pair.currentRoundTripTime === 'number' ? pair.currentRoundTripTime : null,
        bytesSent: pair.bytesSent || 0,
        bytesReceived: pair.bytesReceived || 0,
        responsesReceived: pair.responsesReceived || 0,
      };
    };
    var selected = { a: await selectedPair(a), b: await selectedPair(b) };

    return {
      gathered: gathered,
      iceErrors: iceErrors,
      iceState: { a: a.iceConnectionState, b: b.iceConnectionState },
      receivedByB: receivedByB,
      receivedByA: receivedByA,
      largeLength: cfg.largeLength,
      largeOkAtB: largeOkAtB,
      largeOkAtA: largeOkAtA,
      selected: selected,
      timings: timings,
      rttMedianMs: rttMedianMs,
      rttRounds: rtts.length,
    };
  } catch (e) {
    var err = new Error(String(e && e.message || e) + ' | ice a=' + a.iceConnectionState + ' b=' + b.iceConnectionState
      + ' | gathered a=' + JSON.stringify(gathered.a) + ' b=' + JSON.stringify(gathered.b)
      + ' | iceErrors=' + JSON.stringify(iceErrors));
    throw err;
  } finally {
    a.close();
    b.close();
  }
};
`;

/** The HTML the runner loads with page.setContent. */
export const PAGE_HTML = `<!doctype html><html><head><meta charset="utf-8"><title>TURN relay test</title></head><body><script>${SCRIPT}</script></body></html>`;

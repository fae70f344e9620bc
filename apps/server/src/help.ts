/** The text `nat-server --help` prints after the options: examples, the config file's keys, the exit codes. */
export const HELP_AFTER = `
Examples:
  nat-server --listen 127.0.0.1 --alternate 127.0.0.2          loopback demo (ports 3478, 3479)
  nat-server --listen 203.0.113.1 --alternate 203.0.113.2 --tls-port 5349 --tls-cert cert.pem --tls-key key.pem
  nat-server --config /etc/nat-server.yaml

  nat-server --listen 203.0.113.1 --realm example.org --auth-secret S --relay-ip 203.0.113.1
                                                              STUN + TURN with REST API credentials
  nat-server --listen 203.0.113.1 --realm example.org --auth-secret S --rendezvous-port 8080
                                                              + rendezvous: peers (nat connect, listen, ping,
                                                              expose) meet at ws://203.0.113.1:8080 and get
                                                              anonymous relay credentials (UDP relay only, toward
                                                              their sessions' peers; never public ports)
  nat-server --listen 203.0.113.1 --rendezvous-port 8080 --expose-ports 20000-20099 --user alice:secret
                                                              + public ports for nat expose --public

Config file keys (YAML or JSON; a list key also takes one value, e.g. listen: 127.0.0.1):
listen, alternate, externalIps, port, altPort, tcp, tlsPort, tlsCert, tlsKey, software,
rateLimit {perSecond, burst}, maxConnections, maxConnectionsPerSource, idleTimeout,
tlsHandshakeTimeout, proxyProtocolFrom, logLevel, workers; TURN: realm, users [name:password], usersFile,
authSecrets, relayIps, minPort, maxPort, allowPeers, denyPeers, userQuota, totalQuota,
sourceQuota, tcpConnectsPerAllocation, tcpIncomingPerAllocation, maxPermissions, maxChannels, bandwidth, defaultLifetime, maxLifetime, strictChannelRange,
alternateServer; rendezvous: rendezvousPort, rendezvousHost, rendezvousIceUrls, rendezvousPeerKeys, rendezvousTokens,
rendezvousHandshakeTimeout, rendezvousConnectionsPerSource, rendezvousMaxConnections, rendezvousNamesPerKey, rendezvousNameClaimsPerHour,
rendezvousNameTtlDays; anonymous relay (credentials the rendezvous hands out): anonymousRelayPerPeer, anonymousRelayTotal,
anonymousRelayBandwidth, anonymousRelayTotalBandwidth; expose: exposePorts, exposePublicIp,
exposePortsPerUser, exposeConnectionsPerPort, exposeBandwidth, exposeIdleTimeout, exposeGrace, exposePeerKeys,
exposeDenySources, exposeSessionsPerSource, exposeConnectionsPerSource, exposeOutbound, exposeOutboundPerSession, exposeOutboundPerMinute,
exposeOutboundTotal, exposeOutboundTimeout; admin: adminPort, adminListen, adminToken, adminTokenFile;
cluster: redis, nodeId, redisUserdb, redisUserdbCacheTtl, quotaLease, alternateOver.  Exit codes: 0 stopped cleanly, 1 could not start, 2 bad usage.`;

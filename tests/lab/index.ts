/**
 * The real-kernel NAT lab for integration tests: network namespaces with an nftables NAT
 * recipe per behaviour ({@link createLab}), and the independent Debian classifiers that
 * confirm each recipe (coturn + turnutils_natdiscovery, stund + stun).
 */
export * from './recipes.js';
export * from './netns.js';
export * from './classifiers.js';

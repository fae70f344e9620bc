/**
 * The client's fuzz targets use the protocol package's fuzz harness (targets, corpora, the two
 * properties per target): one harness for every package.
 */
export * from '../../protocol/fuzz/harness.js';

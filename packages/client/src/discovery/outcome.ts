import type { TransportAddress } from '@nat/protocol';

/**
 * What one discovery test observed, reduced to what the decision procedures need:
 *
 * - `response`: a usable Binding response arrived (from the right address), with the mapped
 *   address it reported;
 * - `no-response`: nothing arrived within the retransmission budget;
 * - `unusable`: something arrived that cannot be used (an error response, a response from the
 *   wrong address to a CHANGE-REQUEST, a response without a mapped address), so the server
 *   cannot answer this test and its result is not measurable.
 */
export type TestOutcome =
  { readonly kind: 'response'; readonly mapped: TransportAddress } | { readonly kind: 'no-response' } | { readonly kind: 'unusable'; readonly reason: string };

/**
 * Test I of both procedures (a Binding request with no attributes to the primary address) with
 * what the classification needs to know about it.
 */
export type FirstTestOutcome =
  | {
      readonly kind: 'response';
      readonly mapped: TransportAddress;
      /** The mapped address equals the local address the request was sent from: no NAT. */
      readonly sameAsLocal: boolean;
      /** The server's alternate address (OTHER-ADDRESS or CHANGED-ADDRESS), if it sent one. */
      readonly alternate: TransportAddress | undefined;
    }
  | { readonly kind: 'no-response' }
  | { readonly kind: 'unusable'; readonly reason: string };

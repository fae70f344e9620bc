export { Attr, ATTRIBUTE_REGISTRY, attributeSpec, attributeName } from './registry.js';
export { type AttributeSpec, type AttributeEntry, attr, isComprehensionRequired } from './spec.js';
export type { ErrorCodeValue } from './error-code.js';
export { errorCode } from './error-code.js';
export type { ChangeRequestValue } from './change-request.js';
export type { AddressErrorCodeValue, IcmpValue } from './turn.js';
export type { PasswordAlgorithmValue } from './password-algorithms.js';

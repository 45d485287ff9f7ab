export { type AuthorizeFn, type AuthResult, type StateMap, stateKey } from './state.js';
export { type ChainEntry, type ChainFailureKind, type ChainResult, type VerifyChainOptions, verifyChain } from './verify-chain.js';

// The dispatcher protocol in one import: action names, field patterns, types, validators, envelope.
export * from './actions.js';
export * from './patterns.js';
export * from './types.js';
export * from './envelope.js';
export * from './validate.js';
export * from './secure-link.js';
export * from './version.js';

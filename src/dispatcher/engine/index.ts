// The engine as the front door sees it: configuration, state layout, the action table, the builder and the failure type.
export { BUILDER_WORD, runBuilder } from './builder.js';
export { reportFindings } from './check.js';
export { nowIso } from './clock.js';
export { loadConfig, type DispatcherConfig } from './config.js';
export { DispatcherFailure, fail } from './failure.js';
export { initState, paths } from './layout.js';
export { withMutex } from './lock.js';
export { perform } from './perform.js';

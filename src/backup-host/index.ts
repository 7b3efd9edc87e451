// The portal's client of the backup host's dispatcher, in one import.
export * from './errors.js';
export * from './refusal-wording.js';
export * from './host-key.js';
export type { RawOutcome, Transport } from './transport.js';
export * from './backup-host.js';
export * from './ssh.transport.js';
export * from './local.transport.js';
export * from './factory.js';
export * from './check.js';
export * from './check.command.js';
export * from './fleet.js';
export * from './hosts-file.js';

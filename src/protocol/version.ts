// The dispatcher's version: what `ping` reports and what the portal built from the same source expects.
export const DISPATCHER_VERSION = '0.1.0';

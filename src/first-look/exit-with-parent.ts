// Preloaded (node --import) into first look's dispatcher `watch` and `sweep`: they stop when the portal is gone.
// The portal holds the other end of stdin and never writes to it, so end-of-file means it exited, however
// it exited (SIGKILL included). SIGTERM lets `watch` save its place in the download log as on a stop.
process.stdin.on('end', () => process.kill(process.pid, 'SIGTERM'));
process.stdin.on('error', () => process.kill(process.pid, 'SIGTERM'));
process.stdin.resume();
// Reading must not keep a finished `sweep` alive.
(process.stdin as { unref?: () => void }).unref?.();
export {};

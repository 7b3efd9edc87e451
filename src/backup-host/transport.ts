// The one thing a transport does: run one dispatcher action with a JSON request and report what came back.
import type { RemoteAction } from '../protocol/index.js';

/** What one dispatcher run produced, before interpretation. */
export interface RawOutcome {
  exitCode: number | null;
  signal: string | null;
  stdout: string;
  /** Kept for the operator's log; the gate's refusal message arrives here. */
  stderr: string;
}

export interface Transport {
  /** A short description for logs and the check command (never contains a secret). */
  readonly describe: string;
  run(action: RemoteAction, requestJson: string): Promise<RawOutcome>;
}

/** Caps on what we buffer from the other side, so a misbehaving host cannot exhaust our memory. */
export const MAX_STDOUT_BYTES = 8 * 1024 * 1024;
export const MAX_STDERR_BYTES = 64 * 1024;

/** Collects a stream's text up to a cap; beyond it, the rest is dropped and `overflowed` is set. */
export class CappedText {
  private chunks: Buffer[] = [];
  private size = 0;
  overflowed = false;
  constructor(private readonly cap: number) {}
  push(chunk: Buffer): void {
    if (this.size + chunk.length > this.cap) {
      this.overflowed = true;
      return;
    }
    this.chunks.push(chunk);
    this.size += chunk.length;
  }
  text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}

// One log line per call: time, action, caller address, outcome and a detail that never holds a token.
import { appendFileSync } from 'node:fs';
import { nowIso, withMutex } from './engine/index.js';

/** The client address from SSH_CONNECTION ("client_ip client_port server_ip server_port"), or "local". */
export function callerAddress(): string {
  const conn = process.env.SSH_CONNECTION;
  if (!conn) return 'local';
  const ip = conn.split(' ')[0] ?? '';
  return /^[0-9A-Fa-f:.]{2,45}$/.test(ip) ? ip : 'unknown';
}

export class CallLog {
  private file: string | null = null;
  private mutex: string | null = null;
  /** The validated request, once there is one; only its non-secret fields are ever logged. */
  request: unknown = null;
  constructor(private readonly action: string) {}

  /** `mutex` is the lock sweep takes to rename an anonymised copy over the log, so no line goes to the old file. */
  useFile(path: string, mutex: string): void {
    this.file = path;
    this.mutex = mutex;
  }

  write(outcome: string, detail: string): void {
    const line = `${JSON.stringify({ time: nowIso(), action: this.action, caller: callerAddress(), pid: process.pid, outcome, detail: detail.slice(0, 2000) })}\n`;
    const file = this.file;
    if (file !== null) {
      const append = () => appendFileSync(file, line, { mode: 0o600 });
      try {
        if (this.mutex === null) append();
        else withMutex(this.mutex, append);
        return;
      } catch {
        // No lock directory yet (the first call on a new host) or a stuck lock: the line matters more.
        try {
          append();
          return;
        } catch {
          // fall through to stderr so the line is not lost
        }
      }
    }
    process.stderr.write(line);
  }
}

// Fields safe to log: ids, names and addresses. The token (and its hash) never are.
const LOGGED_FIELDS = ['customer', 'snapshot', 'archiveId', 'clientIp', 'after', 'limit'] as const;

/** The call's detail for the log: the request's safe fields, then what the result added (a new id, a state). */
export function describeCall(req: unknown, result: unknown): string {
  const parts: string[] = [];
  const r = (req ?? {}) as Record<string, unknown>;
  for (const k of LOGGED_FIELDS) if (r[k] !== undefined) parts.push(`${k}=${String(r[k])}`);
  // archive.statuses: how many were asked; the refused ones each have their own note line.
  if (Array.isArray(r.archives)) parts.push(`archives=${r.archives.length}`);
  const res = (result ?? {}) as Record<string, unknown>;
  for (const k of ['archiveId', 'state', 'expires'] as const)
    if (res[k] !== undefined && r[k] === undefined) parts.push(`${k}=${String(res[k])}`);
  return parts.join(' ') || 'done';
}

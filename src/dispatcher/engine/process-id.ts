// Identifies a process by pid plus start time, so a recycled pid is never mistaken for a live holder.
import { readFileSync } from 'node:fs';

export interface ProcessId {
  pid: number;
  startTime: string;
}

/** Field 22 of /proc/<pid>/stat (start time in clock ticks since boot), or null if the pid is gone. */
export function processStartTime(pid: number): string | null {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // The command name in parentheses may contain spaces; the fields after its last ')' are fixed.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  if (rest[0] === 'Z' || rest[0] === 'X') return null; // a zombie has finished its work
  return rest[19] ?? null;
}

export function selfId(): ProcessId {
  return { pid: process.pid, startTime: processStartTime(process.pid) ?? '' };
}

export function isAlive(id: ProcessId | null | undefined): boolean {
  if (!id || !Number.isInteger(id.pid) || id.pid <= 1) return false;
  const start = processStartTime(id.pid);
  return start !== null && start === id.startTime;
}

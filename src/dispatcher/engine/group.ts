// Looks up a group id by name from /etc/group (Node has no getgrnam).
import { readFileSync } from 'node:fs';

export function groupId(name: string): number | null {
  let text: string;
  try {
    text = readFileSync('/etc/group', 'utf8');
  } catch {
    return null;
  }
  for (const line of text.split('\n')) {
    const [gname, , gid] = line.split(':');
    if (gname === name && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
  }
  return null;
}

/** Whether we run as root: only root can hand files to root:<nginx group>; tests and development run as themselves. */
export function runningAsRoot(): boolean {
  return typeof process.getuid !== 'function' || process.getuid() === 0;
}

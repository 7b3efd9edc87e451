// What each request log entry means, in the operator's words.

const LABELS: Record<string, string> = {
  'sign-in.password': 'Password',
  'sign-in.password-code-due': 'Password right, code due',
  'sign-in.remember-me': 'Signed in by remember-me',
  'two-factor.second-step': 'Second step (code)',
  'block.started': 'Block started',
  'block.lifted': 'Block lifted',
  'archive.requested': 'Archive requested',
  'archive.cancelled': 'Cancelled by the customer',
  'archive.build-started': 'Build started on the backup host',
  'archive.ready': 'Archive ready',
  'archive.failed': 'Build failed',
  'archive.build-stopped': 'Build stopped on the backup host',
  'archive.expired': 'Archive expired',
  'link.emailed': 'Link email',
  'link.armed': 'New download token',
  'link.issued': 'Download link issued',
  'link.expired': 'Link expired unused',
  'download.completed': 'Download completed',
  'download.interrupted': 'Download interrupted',
};

export function logEventLabel(kind: string, event: string): string {
  return LABELS[`${kind}.${event}`] ?? event;
}

/** The details as `name: value` pairs, the way the page lists them. */
export function describeDetail(detail: Record<string, unknown>): string {
  return Object.entries(detail)
    .map(
      ([name, value]) =>
        `${name}: ${name === 'delivered' ? describeDelivered(value) : typeof value === 'string' ? value : JSON.stringify(value)}`,
    )
    .join(', ');
}

/** A download's progress over all its links: "2000 of 3000 bytes in 2 parts (resumed)". */
function describeDelivered(value: unknown): string {
  const { bytes, total, parts } = (value ?? {}) as Record<string, unknown>;
  if (typeof bytes !== 'number' || typeof total !== 'number' || typeof parts !== 'number') return JSON.stringify(value);
  return `${bytes} of ${total} bytes in ${parts} ${parts === 1 ? 'part' : 'parts'}${parts > 1 ? ' (resumed)' : ''}`;
}

// Which bytes of an archive have been delivered: a sorted list of disjoint half-open ranges, and how to read NGINX's word on one response.

/** [start, end): the bytes start..end-1. Kept sorted and disjoint; touching ranges are merged. */
export type ByteRange = [number, number];

/** The union of `ranges` and [start, end), so a byte delivered twice counts once. */
export function addRange(ranges: readonly ByteRange[], start: number, end: number): ByteRange[] {
  if (end <= start) return ranges.map((r) => [r[0], r[1]]);
  const out: ByteRange[] = [];
  let s = start;
  let e = end;
  for (const [a, b] of ranges) {
    if (b < s) out.push([a, b]);
    else if (a > e) out.push([a, b]);
    else [s, e] = [Math.min(a, s), Math.max(b, e)];
  }
  out.push([s, e]);
  return out.sort((x, y) => x[0] - y[0]);
}

export function coveredBytes(ranges: readonly ByteRange[]): number {
  return ranges.reduce((sum, [a, b]) => sum + (b - a), 0);
}

/** True when the ranges cover every byte of an archive of `size` bytes. */
export function coversAll(ranges: readonly ByteRange[], size: number): boolean {
  return size === 0 || (ranges.length === 1 && ranges[0]![0] === 0 && ranges[0]![1] >= size);
}

// The response's own Content-Range, as NGINX's range filter writes it for a single range: what was
// actually served, so watch never re-parses the client's Range header (NGINX's parser is the authority).
const CONTENT_RANGE = /^bytes (\d{1,15})-(\d{1,15})\/(\d{1,15})$/;

/**
 * The bytes one logged response delivered of an archive of `size` bytes: a 200 from byte 0, a 206
 * from its Content-Range start, each only up to $body_bytes_sent. Null when the line is not
 * credible (a 206 without a single Content-Range of this archive, more bytes than the response
 * holds): such a line counts nothing.
 */
export function deliveredBy(status: number, contentRange: string, bytes: number, size: number): ByteRange | null {
  if (status === 200) return contentRange === '' && bytes <= size ? [0, bytes] : null;
  if (status !== 206) return null;
  const m = CONTENT_RANGE.exec(contentRange);
  if (!m) return null;
  const [first, last, total] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (total !== size || first > last || last >= size || bytes > last - first + 1) return null;
  return [first, first + bytes];
}

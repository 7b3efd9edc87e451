// Counts the members of a tar stream as it passes, by reading the 512-byte headers between payloads.

const BLOCK = 512;
const ZERO_BLOCK = Buffer.alloc(BLOCK);

/** GNU long-name/long-link pseudo entries describe the next member; they are not members themselves. */
const META_TYPES = new Set(['L', 'K', 'x', 'g']);

export class TarMemberCounter {
  /** Members that are not directories (regular files, links, FIFOs, devices). */
  files = 0;
  entries = 0;
  private skip = 0; // payload bytes (rounded to blocks) still to pass before the next header
  private header = Buffer.alloc(BLOCK);
  private headerFill = 0;
  private ended = false;

  push(chunk: Buffer): void {
    let pos = 0;
    while (pos < chunk.length && !this.ended) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, chunk.length - pos);
        this.skip -= n;
        pos += n;
        continue;
      }
      const n = Math.min(BLOCK - this.headerFill, chunk.length - pos);
      chunk.copy(this.header, this.headerFill, pos, pos + n);
      this.headerFill += n;
      pos += n;
      if (this.headerFill === BLOCK) {
        this.headerFill = 0;
        this.onHeader(this.header);
      }
    }
  }

  private onHeader(h: Buffer): void {
    if (h.equals(ZERO_BLOCK)) {
      // Two zero blocks end the archive; one is enough to know no member follows.
      this.ended = true;
      return;
    }
    const type = String.fromCharCode(h[156] ?? 0);
    const size = readSize(h.subarray(124, 136));
    // Only regular files and long-name data carry a payload; hard links and specials have none.
    const hasPayload = type === '0' || type === '\0' || type === '7' || META_TYPES.has(type);
    this.skip = hasPayload ? Math.ceil(size / BLOCK) * BLOCK : 0;
    if (META_TYPES.has(type)) return;
    this.entries++;
    if (type !== '5') this.files++;
  }
}

/** Octal, or GNU base-256 when the high bit of the first byte is set (files of 8 GiB and more). */
function readSize(field: Buffer): number {
  if (((field[0] ?? 0) & 0x80) !== 0) {
    let n = (field[0] ?? 0) & 0x7f;
    for (let i = 1; i < field.length; i++) n = n * 256 + (field[i] ?? 0);
    return n;
  }
  const text = field
    .toString('latin1')
    .replace(/[\0 ]+/g, ' ')
    .trim();
  return text === '' ? 0 : parseInt(text, 8);
}

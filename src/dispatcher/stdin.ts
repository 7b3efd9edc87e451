// Reads stdin up to a byte cap; reading stops one byte past the cap so a huge request costs nothing.
export async function readCapped(limit: number): Promise<{ bytes: Buffer; tooLarge: boolean }> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of process.stdin) {
    const b = c as Buffer;
    size += b.length;
    if (size > limit) return { bytes: Buffer.alloc(0), tooLarge: true };
    chunks.push(b);
  }
  return { bytes: Buffer.concat(chunks), tooLarge: false };
}

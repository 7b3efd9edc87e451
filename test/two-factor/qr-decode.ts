// Reads a QR code back from the SVG the qrcode package draws: modules from the path, then the
// standard decoding (format bits, unmasking, codeword order, de-interleaving, segments). No error
// correction: the picture is drawn, not photographed, so every module is right or the test fails.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
// Only the standard's tables (codewords per version, error-correction blocks) come from the package.
const ecc = require('qrcode/lib/core/error-correction-code.js') as {
  getBlocksCount(version: number, level: { bit: number }): number;
  getTotalCodewordsCount(version: number, level: { bit: number }): number;
};
const utils = require('qrcode/lib/core/utils.js') as { getSymbolTotalCodewords(version: number): number };
const levels = require('qrcode/lib/core/error-correction-level.js') as Record<'L' | 'M' | 'Q' | 'H', { bit: number }>;

/** The dark modules of the SVG's one stroked path ("M x y.5 h n m dx 0 h n ..."), margin removed. */
export function modulesFromSvg(svg: string): boolean[][] {
  const path = /<path[^>]*stroke="#000000"[^>]*d="([^"]+)"/.exec(svg)?.[1];
  if (path === undefined) throw new Error('no dark path in the SVG');
  const dark: Array<[number, number]> = [];
  let x = 0;
  let y = 0;
  for (const [, command, args] of path.matchAll(/([MmHh])([^MmHh]*)/g)) {
    const numbers = (args ?? '')
      .trim()
      .split(/[\s,]+/)
      .filter((n) => n !== '')
      .map(Number);
    if (command === 'M') [x, y] = [numbers[0]!, numbers[1]!];
    else if (command === 'm') [x, y] = [x + numbers[0]!, y + numbers[1]!];
    else if (command === 'h') {
      for (let i = 0; i < numbers[0]!; i += 1) dark.push([x + i, Math.floor(y)]);
      x += numbers[0]!;
    } else throw new Error(`unexpected path command ${command}`);
  }
  const margin = Math.min(...dark.map(([cx]) => cx));
  const top = Math.min(...dark.map(([, cy]) => cy));
  const size = Math.max(...dark.map(([cx]) => cx)) - margin + 1;
  if (top !== margin || (size - 17) % 4 !== 0) throw new Error('not a QR code');
  const grid = Array.from({ length: size }, () => new Array<boolean>(size).fill(false));
  for (const [cx, cy] of dark) grid[cy - margin]![cx - margin] = true;
  return grid;
}

const ALIGNMENT: number[][] = [
  [],
  [],
  [6, 18],
  [6, 22],
  [6, 26],
  [6, 30],
  [6, 34],
  [6, 22, 38],
  [6, 24, 42],
  [6, 26, 46],
  [6, 28, 50],
  [6, 30, 54],
  [6, 32, 58],
  [6, 34, 62],
  [6, 26, 46, 66],
  [6, 26, 48, 70],
];
const MASKS: Array<(row: number, col: number) => boolean> = [
  (r, c) => (r + c) % 2 === 0,
  (r) => r % 2 === 0,
  (_r, c) => c % 3 === 0,
  (r, c) => (r + c) % 3 === 0,
  (r, c) => (Math.floor(r / 2) + Math.floor(c / 3)) % 2 === 0,
  (r, c) => ((r * c) % 2) + ((r * c) % 3) === 0,
  (r, c) => (((r * c) % 2) + ((r * c) % 3)) % 2 === 0,
  (r, c) => (((r + c) % 2) + ((r * c) % 3)) % 2 === 0,
];
/** Format bits 14-13 to the level: 01 L, 00 M, 11 Q, 10 H. */
const LEVELS: Record<number, 'L' | 'M' | 'Q' | 'H'> = { 1: 'L', 0: 'M', 3: 'Q', 2: 'H' };

function formatCode(data: number): number {
  let rem = data << 10;
  for (let bit = 14; bit >= 10; bit -= 1) if ((rem >> bit) & 1) rem ^= 0x537 << (bit - 10);
  return ((data << 10) | rem) ^ 0x5412;
}

export function decodeQrMatrix(grid: boolean[][]): string {
  const size = grid.length;
  const version = (size - 17) / 4;
  if (version > 15) throw new Error('version above 15 not handled');
  const at = (row: number, col: number) => grid[row]![col]!;

  // Format information next to the top-left finder: row 8 left to right, then column 8 upwards.
  let format = 0;
  for (let col = 0; col <= 8; col += 1) if (col !== 6) format = (format << 1) | Number(at(8, col));
  for (let row = 7; row >= 0; row -= 1) if (row !== 6) format = (format << 1) | Number(at(row, 8));
  const data = [...Array(32).keys()].find((d) => formatCode(d) === format);
  if (data === undefined) throw new Error('format information unreadable');
  const level = levels[LEVELS[data >> 3]!];
  const mask = MASKS[data & 7]!;

  // Modules that carry no data: finders with separators and format areas, timing, alignment, version info.
  const reserved = Array.from({ length: size }, () => new Array<boolean>(size).fill(false));
  const region = (top: number, left: number, height: number, width: number) => {
    for (let r = top; r < top + height; r += 1) for (let c = left; c < left + width; c += 1) reserved[r]![c] = true;
  };
  region(0, 0, 9, 9);
  region(0, size - 8, 9, 8);
  region(size - 8, 0, 8, 9);
  for (const r of ALIGNMENT[version]!) {
    for (const c of ALIGNMENT[version]!) {
      const onFinder = (r === 6 && c === 6) || (r === 6 && c === size - 7) || (r === size - 7 && c === 6);
      if (!onFinder) region(r - 2, c - 2, 5, 5);
    }
  }
  region(6, 8, 1, size - 16);
  region(8, 6, size - 16, 1);
  if (version >= 7) {
    region(0, size - 11, 6, 3);
    region(size - 11, 0, 3, 6);
  }

  // Codewords: two-column strips from the right, alternately upwards and downwards, skipping column 6.
  const codewords: number[] = [];
  let byte = 0;
  let bits = 0;
  let upwards = true;
  for (let right = size - 1; right > 0; right -= 2) {
    if (right === 6) right -= 1;
    for (let i = 0; i < size; i += 1) {
      const row = upwards ? size - 1 - i : i;
      for (const col of [right, right - 1]) {
        if (reserved[row]![col]) continue;
        byte = (byte << 1) | Number(at(row, col) !== mask(row, col));
        bits += 1;
        if (bits === 8) {
          codewords.push(byte);
          byte = 0;
          bits = 0;
        }
      }
    }
    upwards = !upwards;
  }

  // De-interleave the data codewords of the blocks.
  const total = utils.getSymbolTotalCodewords(version);
  const blocks = ecc.getBlocksCount(version, level);
  const ecTotal = ecc.getTotalCodewordsCount(version, level);
  const ecPerBlock = ecTotal / blocks;
  const longBlocks = total % blocks;
  const shortData = Math.floor(total / blocks) - ecPerBlock;
  const dataOf = Array.from({ length: blocks }, (_, b) => new Array<number>(b < blocks - longBlocks ? shortData : shortData + 1));
  let next = 0;
  for (let i = 0; i <= shortData; i += 1) {
    for (const block of dataOf) if (i < block.length) block[i] = codewords[next++]!;
  }
  const stream = dataOf.flat();

  // Segments: numeric, alphanumeric and byte modes (all qrcode uses for an ASCII URI), then the terminator.
  let pos = 0;
  const read = (n: number) => {
    let value = 0;
    for (let i = 0; i < n; i += 1, pos += 1) value = (value << 1) | ((stream[pos >> 3]! >> (7 - (pos & 7))) & 1);
    return value;
  };
  const countBits = (mode: number) =>
    ({ 1: [10, 12, 14], 2: [9, 11, 13], 4: [8, 16, 16] })[mode as 1 | 2 | 4]![version < 10 ? 0 : version < 27 ? 1 : 2]!;
  const ALNUM = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:';
  const bytes: number[] = [];
  for (;;) {
    if (pos + 4 > stream.length * 8) break;
    const mode = read(4);
    if (mode === 0) break;
    const count = read(countBits(mode));
    if (mode === 4) for (let i = 0; i < count; i += 1) bytes.push(read(8));
    else if (mode === 1) {
      let digits = '';
      for (let left = count; left > 0; left -= 3)
        digits += String(read(left >= 3 ? 10 : left === 2 ? 7 : 4)).padStart(Math.min(left, 3), '0');
      bytes.push(...Buffer.from(digits, 'ascii'));
    } else if (mode === 2) {
      let chars = '';
      for (let left = count; left > 0; left -= 2) {
        if (left >= 2) {
          const v = read(11);
          chars += ALNUM[Math.floor(v / 45)]! + ALNUM[v % 45]!;
        } else chars += ALNUM[read(6)]!;
      }
      bytes.push(...Buffer.from(chars, 'ascii'));
    } else throw new Error(`segment mode ${mode} not handled`);
  }
  return Buffer.from(bytes).toString('utf8');
}

export function decodeQrSvg(svg: string): string {
  return decodeQrMatrix(modulesFromSvg(svg));
}

// A strict RFC 4180 CSV reader that remembers on which line of the file each record began.

export interface CsvRecord {
  /** 1-based line of the file where the record starts (a quoted field may span lines). */
  line: number;
  fields: string[];
}

export class CsvSyntaxError extends Error {
  constructor(
    readonly line: number,
    readonly problem: string,
  ) {
    super(`line ${line}: ${problem}`);
    this.name = 'CsvSyntaxError';
  }
}

/** Parses the whole text; blank lines are skipped; a UTF-8 byte-order mark is ignored. */
export function parseCsv(text: string): CsvRecord[] {
  const records: CsvRecord[] = [];
  const input = text.startsWith('\uFEFF') ? text.slice(1) : text;
  let line = 1;
  let i = 0;
  while (i < input.length) {
    const start = line;
    const fields: string[] = [];
    let field = '';
    let atFieldStart = true;
    let endOfRecord = false;
    while (i < input.length && !endOfRecord) {
      const c = input[i];
      if (atFieldStart && c === '"') {
        // Quoted field: runs to the closing quote; "" is one quote; may contain commas and newlines.
        i += 1;
        for (;;) {
          if (i >= input.length) throw new CsvSyntaxError(start, 'a quoted field is not closed');
          const q = input[i];
          if (q === '"' && input[i + 1] === '"') {
            field += '"';
            i += 2;
          } else if (q === '"') {
            i += 1;
            break;
          } else {
            if (q === '\n') line += 1;
            field += q;
            i += 1;
          }
        }
        const next = input[i];
        if (next !== undefined && next !== ',' && next !== '\n' && next !== '\r') {
          throw new CsvSyntaxError(line, 'text follows the closing quote of a field');
        }
        atFieldStart = false;
        continue;
      }
      if (c === ',') {
        fields.push(field);
        field = '';
        atFieldStart = true;
        i += 1;
      } else if (c === '\r' || c === '\n') {
        i += c === '\r' && input[i + 1] === '\n' ? 2 : 1;
        line += 1;
        endOfRecord = true;
      } else {
        if (c === '"') throw new CsvSyntaxError(line, 'a quote inside an unquoted field (quote the whole field and double the quote)');
        field += c;
        atFieldStart = false;
        i += 1;
      }
    }
    fields.push(field);
    if (!(fields.length === 1 && fields[0] === '')) records.push({ line: start, fields });
  }
  return records;
}

// The request log as CSV: RFC 4180 quoting, and no cell a spreadsheet would run as a formula.
import type { LogRow } from './log.repository.js';

export const LOG_CSV_HEADER = ['time_utc', 'customer', 'ip', 'kind', 'event', 'outcome', 'details'];

/**
 * A cell starting with `=`, `+`, `-`, `@`, tab or CR is a formula to Excel, LibreOffice and Google
 * Sheets (OWASP "CSV injection"); a leading `'` makes it text. Every cell is quoted, so commas,
 * quotes and line breaks stay inside it.
 */
export function csvCell(value: string): string {
  const safe = /^[=+\-@\t\r]/.test(value) ? `'${value}` : value;
  return `"${safe.replace(/"/g, '""')}"`;
}

export function csvLine(cells: string[]): string {
  return `${cells.map(csvCell).join(',')}\r\n`;
}

export function logRowCsv(row: LogRow): string {
  return csvLine([
    row.at.toISOString(),
    row.email ?? '',
    row.ip ?? '',
    row.kind,
    row.event,
    row.outcome,
    Object.keys(row.detail).length === 0 ? '' : JSON.stringify(row.detail),
  ]);
}

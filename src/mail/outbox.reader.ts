// Reads the .eml files first-look mode writes back into headers, plain text and HTML, for the outbox and mailbox pages.
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { OUTBOX_FILE_NAME } from './mail.transport.js';

export interface OutboxMessage {
  date: string;
  from: string;
  to: string;
  subject: string;
  /** The text/plain part, decoded; null if the file has none. */
  text: string | null;
  /** The text/html part, decoded; null if the file has none. Untrusted markup: only ever shown sandboxed. */
  html: string | null;
}

/** Names of the messages, newest first; only names the mail transport writes, so nothing else in the folder is reachable. */
export async function outboxFileNames(dir: string): Promise<string[]> {
  const names = await readdir(dir).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return [] as string[];
    throw error;
  });
  return names
    .filter((name) => OUTBOX_FILE_NAME.test(name))
    .sort()
    .reverse();
}

/** One message of the outbox; `name` must come from outboxFileNames(). */
export async function readOutboxFile(dir: string, name: string): Promise<OutboxMessage> {
  return readOutboxMessage(await readFile(path.join(dir, name), 'latin1'));
}

/** The bare addresses of a To header (`a@x, "B" <b@y>` -> a@x, b@y), lowercased. */
export function recipientAddresses(to: string): string[] {
  return to
    .split(',')
    .map((part) => (/<([^<>]*)>\s*$/.exec(part)?.[1] ?? part).trim().toLowerCase())
    .filter((address) => address !== '');
}

/**
 * Parses `source` read as latin1 (one char per byte). Only as much MIME as nodemailer writes:
 * nested multipart, base64 / quoted-printable / 7bit / 8bit bodies, UTF-8 throughout.
 */
export function readOutboxMessage(source: string): OutboxMessage {
  const { headers, body } = splitPart(source.replace(/\r\n/g, '\n'));
  const header = (name: string) => decodeEncodedWords(headers.get(name) ?? '');
  return {
    date: header('date'),
    from: header('from'),
    to: header('to'),
    subject: header('subject'),
    text: findPart(headers, body, 'text/plain'),
    html: findPart(headers, body, 'text/html'),
  };
}

function splitPart(part: string): { headers: Map<string, string>; body: string } {
  const end = part.indexOf('\n\n');
  const head = end === -1 ? part : part.slice(0, end);
  const headers = new Map<string, string>();
  // A line starting with white space continues the header above it (RFC 5322 folding).
  for (const line of head.replace(/\n[ \t]+/g, ' ').split('\n')) {
    const colon = line.indexOf(':');
    const name = line.slice(0, colon).trim().toLowerCase();
    if (colon > 0 && !headers.has(name)) headers.set(name, line.slice(colon + 1).trim());
  }
  return { headers, body: end === -1 ? '' : part.slice(end + 2) };
}

/** The first part of this MIME type, decoded to UTF-8 text, or null. */
function findPart(headers: Map<string, string>, body: string, wanted: 'text/plain' | 'text/html'): string | null {
  const type = headers.get('content-type') ?? 'text/plain';
  if (/^multipart\//i.test(type)) {
    const boundary = /boundary="?([^";]+)"?/i.exec(type)?.[1];
    if (boundary === undefined) return null;
    for (const chunk of body.split(`--${boundary}`).slice(1)) {
      if (chunk.startsWith('--')) break;
      const part = splitPart(chunk.replace(/^\n/, ''));
      const text = findPart(part.headers, part.body, wanted);
      if (text !== null) return text;
    }
    return null;
  }
  if (type.split(';')[0]!.trim().toLowerCase() !== wanted) return null;
  const encoding = (headers.get('content-transfer-encoding') ?? '7bit').toLowerCase();
  const bytes =
    encoding === 'base64'
      ? Buffer.from(body, 'base64')
      : Buffer.from(encoding === 'quoted-printable' ? decodeQuotedPrintable(body) : body, 'latin1');
  return bytes.toString('utf8').trimEnd();
}

/** Quoted-printable to one char per byte: soft line breaks removed, =XX turned into its byte. */
function decodeQuotedPrintable(text: string): string {
  return text.replace(/=\n/g, '').replace(/=([0-9A-Fa-f]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

/** RFC 2047 words such as =?UTF-8?Q?Gr=C3=BC=C3=9Fe?= in a header; adjacent words join without the space. */
function decodeEncodedWords(value: string): string {
  return value
    .replace(/\?=\s+=\?/g, '?==?')
    .replace(/=\?utf-8\?([bq])\?([^?]*)\?=/gi, (_, kind: string, text: string) =>
      (kind.toLowerCase() === 'b'
        ? Buffer.from(text, 'base64')
        : Buffer.from(decodeQuotedPrintable(text.replace(/_/g, ' ')), 'latin1')
      ).toString('utf8'),
    );
}

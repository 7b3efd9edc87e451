// TOTP (RFC 6238) with otplib: secrets, the otpauth:// URI and its QR code, and code checks that say which time step matched.
import { randomBytes } from 'node:crypto';
import { authenticator } from 'otplib';
import QRCode from 'qrcode';

export const STEP_SECONDS = 30;
/** One step either side: a phone clock 30 s off still works, and a code lives at most about 90 s. */
export const DRIFT_STEPS = 1;
/** RFC 4226 asks for at least 128 bits and recommends 160: 20 bytes, 32 base32 characters. */
export const SECRET_BYTES = 20;

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** RFC 4648 base32 without padding: what authenticator apps expect in the URI and when typed. */
export function base32Encode(bytes: Buffer): string {
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += BASE32[(value << (5 - bits)) & 31];
  return out;
}

export function base32Decode(text: string): Buffer {
  const clean = text.replace(/[\s=]/g, '').toUpperCase();
  const out: number[] = [];
  let bits = 0;
  let value = 0;
  for (const char of clean) {
    const index = BASE32.indexOf(char);
    if (index < 0) throw new RangeError('not base32');
    value = (value << 5) | index;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 255);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

export function generateSecret(): Buffer {
  return randomBytes(SECRET_BYTES);
}

export function timeStep(now: Date): number {
  return Math.floor(now.getTime() / 1000 / STEP_SECONDS);
}

function authenticatorAt(now: Date) {
  return authenticator.clone({ step: STEP_SECONDS, window: DRIFT_STEPS, epoch: now.getTime(), digits: 6 });
}

/** The code an app shows at `now` (tests and the browser test play the phone with it). */
export function codeAt(secret: Buffer, now: Date): string {
  return authenticatorAt(now).generate(base32Encode(secret));
}

/** Six digits, spaces allowed ("123 456" as some apps show it). */
export function normalizeTotpInput(input: string): string | null {
  const digits = input.replace(/\s/g, '');
  return /^\d{6}$/.test(digits) ? digits : null;
}

/**
 * The time step whose code `code` is, within the drift window around `now`, or null. The caller
 * compares it with the last step accepted for the user: a code must never work twice.
 */
export function matchingStep(secret: Buffer, code: string, now: Date): number | null {
  const digits = normalizeTotpInput(code);
  if (digits === null) return null;
  const delta = authenticatorAt(now).checkDelta(digits, base32Encode(secret));
  return delta === null ? null : timeStep(now) + delta;
}

/** otpauth://totp/Issuer:account?secret=...&issuer=Issuer, the Key Uri Format authenticator apps read. */
export function otpauthUri(issuer: string, account: string, secret: Buffer): string {
  return authenticator.clone({ step: STEP_SECONDS, digits: 6 }).keyuri(account, issuer, base32Encode(secret));
}

/** The QR code as inline SVG: drawn on the server, so enrolment works with JavaScript off. */
export async function qrCodeSvg(uri: string): Promise<string> {
  return QRCode.toString(uri, { type: 'svg', errorCorrectionLevel: 'M', margin: 2, width: 240 });
}

/** The base32 text in groups of four, easier to type into an app by hand. */
export function groupedSecret(secret: Buffer): string {
  return base32Encode(secret).replace(/(.{4})(?=.)/g, '$1 ');
}

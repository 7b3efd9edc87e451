// TOTP (RFC 6238) with otplib: secrets, the otpauth:// URI and its QR code, and code checks that say which time step matched.
import { randomBytes } from 'node:crypto';
import { generateSync, generateURI, ScureBase32Plugin, verifySync } from 'otplib';
import QRCode from 'qrcode';

export const STEP_SECONDS = 30;
/** One step either side: a phone clock 30 s off still works, and a code lives at most about 90 s. */
export const DRIFT_STEPS = 1;
/** RFC 4226 asks for at least 128 bits and recommends 160: 20 bytes, 32 base32 characters. */
export const SECRET_BYTES = 20;

// otplib's own base32 (RFC 4648, no padding): what authenticator apps expect in the URI and when typed.
const base32 = new ScureBase32Plugin();
const TOTP_OPTIONS = { period: STEP_SECONDS, digits: 6, algorithm: 'sha1' } as const;

export function base32Encode(bytes: Buffer): string {
  return base32.encode(bytes);
}

/** Spaces (the grouped form the page shows) and case do not matter; anything else not base32 throws. */
export function base32Decode(text: string): Buffer {
  return Buffer.from(base32.decode(text.replace(/\s/g, '').toUpperCase()));
}

export function generateSecret(): Buffer {
  return randomBytes(SECRET_BYTES);
}

export function timeStep(now: Date): number {
  return Math.floor(now.getTime() / 1000 / STEP_SECONDS);
}

/** The code an app shows at `now` (tests and the browser test play the phone with it). */
export function codeAt(secret: Buffer, now: Date): string {
  return generateSync({ ...TOTP_OPTIONS, secret, epoch: now.getTime() / 1000 });
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
  // A tolerance of one step in seconds either side checks exactly the steps before, at and after now.
  const result = verifySync({
    ...TOTP_OPTIONS,
    secret,
    token: digits,
    epoch: now.getTime() / 1000,
    epochTolerance: DRIFT_STEPS * STEP_SECONDS,
  });
  // otplib types the answer for TOTP and HOTP alike; a valid TOTP answer carries its step.
  return result.valid && 'timeStep' in result ? result.timeStep : null;
}

/** otpauth://totp/Issuer:account?secret=...&issuer=Issuer, the Key Uri Format authenticator apps read (SHA-1, 6 digits, 30 s). */
export function otpauthUri(issuer: string, account: string, secret: Buffer): string {
  return generateURI({ ...TOTP_OPTIONS, issuer, label: account, secret: base32Encode(secret) });
}

/** The QR code as inline SVG: drawn on the server, so enrolment works with JavaScript off. */
export async function qrCodeSvg(uri: string): Promise<string> {
  return QRCode.toString(uri, { type: 'svg', errorCorrectionLevel: 'M', margin: 2, width: 240 });
}

/** The base32 text in groups of four, easier to type into an app by hand. */
export function groupedSecret(secret: Buffer): string {
  return base32Encode(secret).replace(/(.{4})(?=.)/g, '$1 ');
}

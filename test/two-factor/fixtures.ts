// Helpers for the two-factor and remember-me tests: enrol through the real pages, play the phone, sign in in two steps.
import { expect } from 'vitest';
import type { AdjustableClock } from '../../src/clock.js';
import { base32Decode, codeAt, STEP_SECONDS } from '../../src/two-factor/totp.js';
import { WebClient, type Page } from '../harness/web-client.js';

export { deliverMail, recipients, startWorld } from '../accounts/fixtures.js';

/** The base32 key as the enrolment page shows it (grouped by four), as bytes. */
export function secretOnPage(html: string): Buffer {
  const match = /<code id="totp-secret">([A-Z2-7 ]+)<\/code>/.exec(html);
  if (!match?.[1]) throw new Error('no TOTP key on the page');
  return base32Decode(match[1]);
}

export function recoveryCodesOnPage(html: string): string[] {
  return [...html.matchAll(/<li><code>([a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4})<\/code><\/li>/g)].map((m) => m[1]!);
}

/**
 * Moves the app's clock to the middle of a 30-second step, so a code made "now" and checked a few
 * milliseconds later is in the same step, and "one step ago" is exactly one step ago.
 */
export function alignToMidStep(clock: AdjustableClock): void {
  const stepMs = STEP_SECONDS * 1000;
  const into = clock.now().getTime() % stepMs;
  clock.advance((stepMs + stepMs / 2 - into) % stepMs || stepMs);
}

/** The code the phone shows `stepsAgo` steps before the app's now (negative: in the future). */
export function phoneCode(clock: AdjustableClock, secret: Buffer, stepsAgo = 0): string {
  return codeAt(secret, new Date(clock.now().getTime() - stepsAgo * STEP_SECONDS * 1000));
}

/** Enrols the signed-in client through the pages; returns the secret and the ten codes shown once. */
export async function enrolThroughPages(
  client: WebClient,
  clock: AdjustableClock,
  password: string,
): Promise<{ secret: Buffer; recoveryCodes: string[] }> {
  const page = await client.get('/account/two-factor/enrol');
  expect(page.status).toBe(200);
  const secret = secretOnPage(page.body);
  const answer = await client.post('/account/two-factor/enrol', { code: phoneCode(clock, secret), password });
  expect(answer.status).toBe(200);
  const recoveryCodes = recoveryCodesOnPage(answer.body);
  expect(recoveryCodes).toHaveLength(10);
  // The step just used is spent; the next sign-in needs the next code.
  clock.advance(STEP_SECONDS * 1000);
  return { secret, recoveryCodes };
}

/** The password step; with two-factor on, the answer sends the browser to /sign-in/two-factor. */
export async function passwordStep(client: WebClient, email: string, password: string, extra: Record<string, string> = {}): Promise<Page> {
  await client.get('/sign-in');
  return client.post('/sign-in', { email, password, ...extra });
}

/** Both steps; returns the answer to the code. */
export async function signInWithCode(
  client: WebClient,
  email: string,
  password: string,
  code: string,
  extra: Record<string, string> = {},
): Promise<Page> {
  const first = await passwordStep(client, email, password, extra);
  expect(first.status).toBe(303);
  expect(first.location).toBe('/sign-in/two-factor');
  await client.get('/sign-in/two-factor');
  return client.post('/sign-in/two-factor', { code });
}

/** A client signed in with the password alone (no two-factor yet). */
export async function signedInClient(
  app: ConstructorParameters<typeof WebClient>[0],
  email: string,
  password: string,
  options: ConstructorParameters<typeof WebClient>[1] = {},
): Promise<WebClient> {
  const client = new WebClient(app, options);
  const answer = await passwordStep(client, email, password);
  expect(answer.status).toBe(303);
  return client;
}

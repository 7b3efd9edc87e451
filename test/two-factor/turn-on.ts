// Gives an account two-factor sign-in directly (for tests whose subject is something else, e.g. the operator area).
import type { FastifyInstance } from 'fastify';
import { codeAt, generateSecret } from '../../src/two-factor/totp.js';

/** Turns two-factor on for the user with a fresh secret, as enrolment would; returns the secret. */
export async function turnOnTwoFactor(app: FastifyInstance, userId: string): Promise<Buffer> {
  const secret = generateSecret();
  const now = app.clock.now();
  await app.database.db
    .insertInto('two_factor')
    .values({
      user_id: userId,
      secret_encrypted: app.twoFactor.keys.encrypt(secret, userId),
      created_at: now,
      enabled_at: now,
      last_used_step: null,
    })
    .execute();
  return secret;
}

/** The code the phone shows now by the app's clock. Each works once: take the next step for the next sign-in. */
export function currentCode(app: FastifyInstance, secret: Buffer): string {
  return codeAt(secret, app.clock.now());
}

// Users with known passwords for the auth tests, made through the accounts module's own functions.
import type { FastifyInstance } from 'fastify';
import { insertUser, type User } from '../../src/users/user.repository.js';
import type { UserRole, UserStatus } from '../../src/users/users.tables.js';
import type { Page, WebClient } from '../harness/web-client.js';
import { currentCode, turnOnTwoFactor } from '../two-factor/turn-on.js';

export const PASSWORD = 'Correct-Horse-Battery-42';

let counter = 0;

export async function createUser(
  app: FastifyInstance,
  options: { role?: UserRole; status?: UserStatus; password?: string | null; email?: string } = {},
): Promise<User> {
  counter += 1;
  const tag = Math.random().toString(36).slice(2, 8);
  const role = options.role ?? 'customer';
  const password = options.password === undefined ? PASSWORD : options.password;
  return insertUser(app.database.db, {
    email: options.email ?? `user${counter}-${tag}@example.net`,
    role,
    // Domains are unique between accounts, like addresses.
    domain: role === 'customer' ? `social-${counter}-${tag}.example.net` : null,
    plan: role === 'customer' ? 'small' : null,
    status: options.status ?? 'active',
    passwordHash: password === null ? null : await app.passwords.hash(password),
  });
}

/**
 * An operator as the portal requires one: with two-factor sign-in turned on (an operator without it
 * reaches only enrolment). Returns the user and the TOTP secret its phone would hold.
 */
export async function createOperator(app: FastifyInstance): Promise<{ operator: User; secret: Buffer }> {
  const operator = await createUser(app, { role: 'operator' });
  return { operator, secret: await turnOnTwoFactor(app, operator.id) };
}

/** Signs an operator in through the pages: the password, then the code when the second step asks for it. */
export async function signInOperator(app: FastifyInstance, client: WebClient, email: string, secret: Buffer): Promise<Page> {
  const answer = await client.signIn(email, PASSWORD);
  if (answer.location !== '/sign-in/two-factor') return answer;
  await client.get('/sign-in/two-factor');
  return client.post('/sign-in/two-factor', { code: currentCode(app, secret) });
}

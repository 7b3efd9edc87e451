// The one factory for test accounts: customers and operators, active, invited or suspended, with or without two-factor sign-in.
import type { FastifyInstance } from 'fastify';
import type { Db } from '../../src/db/database.js';
import type { UserRole } from '../../src/users/users.tables.js';
import { insertUser, type NewUser, type User } from '../../src/users/user.repository.js';
import { codeAt, generateSecret } from '../../src/two-factor/totp.js';
import type { Page, WebClient } from './web-client.js';

/** Every test account's password unless told otherwise; it passes the password policy, so pages accept it as a new one too. */
export const PASSWORD = 'Tangerine-Harbour-42';

interface UserDatabase {
  database: { db: Db };
  passwords?: { hash(password: string): Promise<string> };
}

/** Where an account is stored: an app (its context), or a database and (for an account with a password) a hasher. */
export type UserStore = UserDatabase | { ctx: UserDatabase };

export interface UserOptions extends Partial<Omit<NewUser, 'passwordHash'>> {
  role?: UserRole;
  /** The plain password to hash (default PASSWORD); null for an account without one, as an invitation leaves it. */
  password?: string | null;
}

let counter = 0;

/**
 * An account with a unique address; by default an active customer with PASSWORD, a unique
 * installation domain (it names the customer's backups on the backup host) and the small plan.
 * An operator has no domain and no plan.
 */
export async function createUser(where: UserStore, options: UserOptions = {}): Promise<User> {
  const store = 'ctx' in where ? where.ctx : where;
  counter += 1;
  const tag = `${counter}-${Math.random().toString(36).slice(2, 8)}`;
  const { password = PASSWORD, role = 'customer', ...fields } = options;
  if (password !== null && store.passwords === undefined)
    throw new Error('createUser needs a password hasher for an account with a password');
  const customer = role === 'customer';
  return insertUser(store.database.db, {
    email: `user-${tag}@example.net`,
    role,
    domain: customer ? `site-${tag}.example.org` : null,
    plan: customer ? 'small' : null,
    status: 'active',
    passwordHash: password === null ? null : await store.passwords!.hash(password),
    ...fields,
  });
}

/** Turns two-factor sign-in on for the user with a fresh secret, as enrolment would; returns the secret the phone holds. */
export async function turnOnTwoFactor(app: FastifyInstance, userId: string): Promise<Buffer> {
  const secret = generateSecret();
  const now = app.ctx.clock.now();
  await app.ctx.database.db
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
  return codeAt(secret, app.ctx.clock.now());
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

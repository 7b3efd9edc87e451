// The operator's actions on one customer: each needs a reason, is audited with the operator and IP, and destroys no data.
import { changeUserEmail, EmailAlreadyUsed, InvitationNotNeeded, inviteAgain } from '../accounts/account.service.js';
import { InvalidAccountField } from '../accounts/account-fields.js';
import { AccountStatusUnchanged, resumeAccount, suspendAccount } from '../accounts/account-status.service.js';
import type { AppContext } from '../context.js';
import type { TwoFactorContext } from '../two-factor/two-factor.service.js';
import { resetTwoFactorByOperator } from '../two-factor/two-factor.service.js';
import { liftTwoFactorBlock } from '../two-factor/two-factor.regulation.js';
import { recordAudit } from '../users/audit.js';
import { liftBlock } from '../users/regulation.js';
import { endRememberLogins, endUserSessions } from '../users/session.service.js';
import type { User } from '../users/user.repository.js';
import type { CustomerFile } from './customers.repository.js';

export const MAX_REASON_LENGTH = 500;

export const ACTIONS = ['invite', 'change-email', 'suspend', 'resume', 'reset-two-factor', 'end-sessions', 'lift-block'] as const;
export type CustomerAction = (typeof ACTIONS)[number];

export function isCustomerAction(name: string): name is CustomerAction {
  return (ACTIONS as readonly string[]).includes(name);
}

/** What each confirmation page is titled and what its button and notice say. */
export const ACTION_TEXT: Record<CustomerAction, { title: string; explain: string; done: string }> = {
  invite: {
    title: 'Invite again',
    explain: 'Spends any earlier invitation link and emails a new one.',
    done: 'A new invitation was emailed.',
  },
  'change-email': {
    title: 'Change the email address',
    explain: 'Both the old and the new address are told. Every session ends; ready archives are emailed again to the new address.',
    done: 'The email address was changed; both addresses were told.',
  },
  suspend: {
    title: 'Suspend the account',
    explain:
      'The customer cannot sign in, every session and remember-me login ends, and no archive or link can be issued. Nothing is deleted. The customer is emailed the reason.',
    done: 'The account was suspended; the customer was emailed.',
  },
  resume: {
    title: 'Resume the account',
    explain: 'The customer can sign in again as before. The customer is emailed.',
    done: 'The account was resumed; the customer was emailed.',
  },
  'reset-two-factor': {
    title: 'Reset two-factor sign-in',
    explain:
      'For a customer who lost both phone and recovery codes: check who is asking first. Two-factor goes off, every session ends, and the customer is emailed.',
    done: 'Two-factor sign-in was reset; the customer was emailed and signed out everywhere.',
  },
  'end-sessions': {
    title: 'End all sessions',
    explain: 'Signs the customer out everywhere: every session and remember-me login ends. The password is unchanged.',
    done: 'Every session and remember-me login of the customer ended.',
  },
  'lift-block': {
    title: 'Lift a block',
    explain: 'Sign-in (or the two-factor step) is allowed again at once; counting starts afresh.',
    done: 'The block was lifted.',
  },
};

export interface ActionForm {
  reason: string;
  newEmail: string;
  block: string;
}

/** The reason every action needs: present, one paragraph, bounded. Null when it is fine. */
export function reasonProblem(reason: string): string | null {
  if (reason === '') return 'Say why: the reason is kept in the audit log.';
  if (reason.length > MAX_REASON_LENGTH) return `The reason is longer than ${MAX_REASON_LENGTH} characters.`;
  if (/[\u0000-\u0008\u000b-\u001f\u007f]/.test(reason)) return 'The reason contains control characters.';
  return null;
}

export type ActionOutcome = { ok: true } | { ok: false; status: number; error: string };

interface Operator {
  id: string;
  ip: string;
}

/** Carries out one action on the customer the page is about; a block id of another customer does nothing. */
export async function runCustomerAction(
  ctx: AppContext,
  twoFactor: TwoFactorContext,
  action: CustomerAction,
  customer: CustomerFile,
  form: ActionForm,
  operator: Operator,
): Promise<ActionOutcome> {
  const problem = reasonProblem(form.reason);
  if (problem !== null) return { ok: false, status: 400, error: problem };
  const user = customer.overview.account;
  const now = ctx.clock.now();
  const reason = form.reason;
  const base = { actor: operator.id, ip: operator.ip, reason, now, mail: ctx.mail };
  try {
    switch (action) {
      case 'invite':
        await inviteAgain(ctx.database.db, user.email, { ...base, publicUrl: ctx.config.publicUrl });
        return { ok: true };
      case 'change-email':
        if (form.newEmail === '') return { ok: false, status: 400, error: 'Enter the new email address.' };
        await changeUserEmail(ctx.database.db, {
          ...base,
          currentEmail: user.email,
          newEmail: form.newEmail,
          publicUrl: ctx.config.publicUrl,
        });
        return { ok: true };
      case 'suspend':
        await suspendAccount(ctx.database.db, { ...base, email: user.email });
        return { ok: true };
      case 'resume':
        await resumeAccount(ctx.database.db, { ...base, email: user.email });
        return { ok: true };
      case 'reset-two-factor':
        return (await resetTwoFactorByOperator(twoFactor, operator.id, user.id, operator.ip, reason))
          ? { ok: true }
          : { ok: false, status: 409, error: 'This account does not have two-factor sign-in on.' };
      case 'end-sessions':
        await endAllSessions(ctx, user, base);
        return { ok: true };
      case 'lift-block':
        return await liftCustomerBlock(ctx, customer, form.block, { ...operator, reason });
    }
  } catch (error) {
    if (error instanceof EmailAlreadyUsed) return { ok: false, status: 409, error: 'Another account already uses that address.' };
    if (error instanceof InvalidAccountField) return { ok: false, status: 400, error: error.userMessage };
    if (error instanceof AccountStatusUnchanged || error instanceof InvitationNotNeeded)
      return { ok: false, status: 409, error: error.message };
    throw error;
  }
}

async function endAllSessions(ctx: AppContext, user: Pick<User, 'id'>, change: { actor: string; ip: string; reason: string; now: Date }) {
  await ctx.database.db.transaction().execute(async (trx) => {
    // Remember-me logins first: ending the sessions would take them along uncounted.
    const ended = (await endRememberLogins(trx, user.id)) + (await endUserSessions(trx, user.id));
    await recordAudit(trx, {
      actor: change.actor,
      action: 'user.sessions_ended',
      subject: user.id,
      ip: change.ip,
      detail: { reason: change.reason, ended },
      at: change.now,
    });
  });
}

async function liftCustomerBlock(ctx: AppContext, customer: CustomerFile, value: string, operator: Operator & { reason: string }) {
  const [kind, id] = value.split(':');
  // Only a block shown on this customer's page: an id typed in for another account is refused.
  const block = customer.blocks.find((b) => b.kind === kind && b.id === id);
  if (block === undefined) return { ok: false as const, status: 404, error: 'This customer has no active block with that id any more.' };
  const lifted =
    block.kind === 'sign-in'
      ? await liftBlock(ctx.regulator, block.id, operator)
      : await liftTwoFactorBlock(ctx.database.db, ctx.clock.now(), block.id, operator);
  return lifted === null ? { ok: false as const, status: 409, error: 'That block already ended or was lifted.' } : { ok: true as const };
}

// Shared set-up for the accounts tests: an app on its own database whose mail goes to an SMTP sink.
import type { ParsedMail } from 'mailparser';
import { deliverDueMail } from '../../src/mail/mail.worker.js';
import { startPortalWorld, type PortalWorld } from '../harness/world.js';

/** The accounts tests' world: mail goes to an SMTP sink, links name https://portal.example.net. */
export function startWorld(env: Record<string, string> = {}): Promise<PortalWorld> {
  return startPortalWorld({ smtp: 'up', env: { ARCHWAY_PUBLIC_URL: 'https://portal.example.net', ...env } });
}

/** Sends what the queue holds to the sink, as the mail worker would, and returns the new messages. */
export async function deliverMail(world: PortalWorld): Promise<ParsedMail[]> {
  const before = world.sink.messages.length;
  await deliverDueMail(world.app.ctx);
  return world.sink.messages.slice(before);
}

/** The set-password link in a message's text, as a path on the portal. */
export function linkIn(message: ParsedMail): string {
  const match = /https:\/\/portal\.example\.net(\/set-password\?token=[A-Za-z0-9_.-]+)/.exec(message.text ?? '');
  if (!match?.[1]) throw new Error(`no set-password link in: ${message.text}`);
  return match[1];
}

export function recipients(message: ParsedMail): string[] {
  const to = Array.isArray(message.to) ? message.to : message.to ? [message.to] : [];
  return to.flatMap((a) => a.value.map((v) => v.address ?? ''));
}

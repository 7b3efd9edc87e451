// Doctor checks of outgoing mail: the SMTP server accepts EHLO, TLS and AUTH as configured; a test message only when asked.
import nodemailer, { type Transporter } from 'nodemailer';
import type { Config } from '../config.js';
import { failureReason, smtpOptions } from '../mail/mail.transport.js';
import { fail, notApplicable, pass, skipped, type CheckResult } from './check-result.js';

const SMTP = ['mail.smtp', 'SMTP server accepts the configured TLS and login'] as const;
const SEND_TEST = ['mail.send-test', 'test message sent'] as const;

const TIMEOUTS = { connectionTimeout: 10_000, greetingTimeout: 10_000, socketTimeout: 20_000 };

export async function checkMail(config: Config, sendTestTo: string | null): Promise<CheckResult[]> {
  const smtpUrl = config.mail.smtpUrl;
  if (smtpUrl === null) {
    const why = `first look writes each message into ${config.mail.outboxDir} instead of sending it`;
    return [notApplicable(...SMTP, why), ...(sendTestTo === null ? [] : [notApplicable(...SEND_TEST, why)])];
  }
  let options;
  try {
    options = smtpOptions(smtpUrl, config.mail.requireTlsByDefault);
  } catch {
    return [
      fail(...SMTP, 'ARCHWAY_SMTP_URL cannot be read', 'write it as smtp://user:password@host:587 or smtps://user:password@host:465'),
    ];
  }
  const where = `${options.host}:${options.port}`;
  const how = options.secure ? 'TLS from the first byte (smtps)' : options.requireTLS ? 'STARTTLS required' : 'STARTTLS when offered';
  const transporter = nodemailer.createTransport({ ...options, ...TIMEOUTS, logger: false, debug: false });
  try {
    try {
      // verify() connects, says EHLO, upgrades as configured and logs in; it sends nothing.
      await transporter.verify();
    } catch (error) {
      const result = fail(...SMTP, `${where} (${how}): ${failureReason(error, smtpUrl)}`, smtpFix(error, where));
      return [result, ...(sendTestTo === null ? [] : [skipped(...SEND_TEST, 'the SMTP server did not accept the connection')])];
    }
    const login = options.auth ? 'login accepted' : 'no login configured (no user in ARCHWAY_SMTP_URL)';
    const results = [pass(...SMTP, `${where} (${how}), ${login}`)];
    if (sendTestTo !== null) results.push(await sendTest(transporter, config.mail.from, sendTestTo, smtpUrl));
    return results;
  } finally {
    transporter.close();
  }
}

async function sendTest(transporter: Transporter, from: string, to: string, smtpUrl: string): Promise<CheckResult> {
  try {
    await transporter.sendMail({
      from,
      to,
      subject: 'Archway test message',
      text: 'This message was sent by "archway doctor --send-test" to show that Archway can send email. Nothing needs to be done.\n',
      headers: { 'Auto-Submitted': 'auto-generated' },
    });
    return pass(...SEND_TEST, `the SMTP server accepted a message to ${to}; check that it arrived (and not as spam)`);
  } catch (error) {
    return fail(
      ...SEND_TEST,
      `to ${to}: ${failureReason(error, smtpUrl)}`,
      "the server's reply says why; if it refused the sender, ARCHWAY_MAIL_FROM is not allowed for this login",
    );
  }
}

/** nodemailer's error codes: EAUTH (login refused), ETLS (TLS failed or not offered), ESOCKET/ECONNECTION/ETIMEDOUT. */
function smtpFix(error: unknown, where: string): string {
  const code = (error as { code?: unknown }).code;
  if (code === 'EAUTH') return 'correct the user name and password in ARCHWAY_SMTP_URL (as URL-encoded text)';
  if (code === 'ETLS') {
    return 'the server offers no usable TLS: use the port where it speaks STARTTLS (587) or TLS (smtps://, 465), or ask the mail provider; do not drop requireTLS';
  }
  if (code === 'ENOAUTH' || code === 'EENVELOPE') return 'give the user name and password the server asks for in ARCHWAY_SMTP_URL';
  return `make sure an SMTP server listens at ${where} and that this machine may connect to it (host and port in ARCHWAY_SMTP_URL, firewall)`;
}

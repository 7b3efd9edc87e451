// `archway doctor`: checks configuration, database, mail, backup host and certificate, one line each, exit 0 only when all pass.
import { allHealthy, formatJson, formatText } from '../doctor/check-result.js';
import { runDoctor } from '../doctor/doctor.js';
import { UsageError, type Command } from './command.js';

export const doctorCommand: Command = {
  name: 'doctor',
  summary: 'Check the installation against the real services (run after install and after every change).',
  usage: `Usage: archway doctor [--json] [--send-test ADDRESS]

Checks, with the settings the portal would use: the configuration; the database (reachable,
every migration applied, the portal's role without superuser or CREATE powers); the SMTP server
(EHLO, TLS and login as configured, without sending anything); the backup host (reached with the
pinned host key, the expected dispatcher version, every action allowed through the gate and
sudo, clocks within a few seconds, the downloads vhost answering 403 for a wrongly signed link);
and the TLS certificate of ARCHWAY_PUBLIC_URL (trusted, at least 14 days left) when it is https.

Prints one line per check: ✓ passed, ✗ failed (with what to do), – not checked or not
applicable (first-look mode says which checks do not apply). Never prints a secret.
Exits 0 when every check passed or does not apply, 1 otherwise.

Options:
  --json                 print the result as JSON: {"ok", "mode", "checks": [{"id", "title", "status", "detail", "fix"}]}
  --send-test ADDRESS    also send one test message to ADDRESS`,
  options: { json: { type: 'boolean' }, 'send-test': { type: 'string' } },
  async run({ values }) {
    const sendTestTo = typeof values['send-test'] === 'string' ? values['send-test'] : null;
    if (sendTestTo !== null && !/^[^\s@<>]+@[^\s@<>]+$/.test(sendTestTo))
      throw new UsageError('--send-test needs an email address like ops@example.net.');
    const { mode, results } = await runDoctor({ sendTestTo });
    process.stdout.write(values.json === true ? formatJson(mode, results) : formatText(results));
    return allHealthy(results) ? 0 : 1;
  },
};

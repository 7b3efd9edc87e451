// `archway doctor`'s runner: reads the configuration, runs every check group against the real services, hides every secret.
import { loadConfig, ConfigError, type Config } from '../config.js';
import { checkBackupHostSetup } from './backup-host.checks.js';
import { describeError, fail, pass, redact, type CheckResult } from './check-result.js';
import { checkDatabase } from './database.checks.js';
import { checkMail } from './mail.checks.js';
import { checkPublicCertificate } from './tls.checks.js';

export interface DoctorOptions {
  env?: Record<string, string | undefined>;
  /** Send one test message to this address; otherwise no mail is sent. */
  sendTestTo?: string | null;
  /** Our clock; tests shift it to stand for a host whose clock is wrong. */
  now?: () => number;
}

export interface DoctorReport {
  mode: Config['mode'] | null;
  results: CheckResult[];
}

const CONFIG = ['config', 'configuration valid'] as const;

export async function runDoctor(options: DoctorOptions = {}): Promise<DoctorReport> {
  const env = options.env ?? process.env;
  const now = options.now ?? Date.now;
  let config: Config;
  try {
    config = loadConfig(env);
  } catch (error) {
    // ConfigError's problems name variables, never their values.
    const problems = error instanceof ConfigError ? error.problems.join(' ') : describeError(error);
    return {
      mode: null,
      results: [
        fail(
          ...CONFIG,
          problems,
          'correct the settings named here (.env.example describes each); the other checks need a valid configuration',
        ),
      ],
    };
  }
  const groups = await Promise.all([
    checkDatabase(config),
    checkMail(config, options.sendTestTo ?? null),
    checkBackupHostSetup(config, now),
    checkPublicCertificate(config.publicUrl, now).then((r) => [r]),
  ]);
  const modeNote = config.mode === 'first-look' ? 'first-look mode (no ARCHWAY_DATABASE_URL): checks marked – do not apply' : 'server mode';
  const results = [pass(...CONFIG, modeNote), ...groups.flat()];
  const secrets = secretsOf(config, env);
  return {
    mode: config.mode,
    results: results.map((r) => ({ ...r, detail: redact(r.detail, secrets), fix: r.fix === null ? null : redact(r.fix, secrets) })),
  };
}

/** Every secret the configuration holds, in the forms an error message might repeat it. */
function secretsOf(config: Config, env: Record<string, string | undefined>): string[] {
  const secrets: string[] = [];
  for (const url of [config.databaseUrl, config.mail.smtpUrl]) {
    if (url === null) continue;
    const { username, password } = new URL(url);
    if (password !== '') secrets.push(password, safeDecode(password), `${username}:${password}`);
  }
  if (config.secrets !== null)
    secrets.push(config.secrets.sessionSecret, config.secrets.passwordPepper, config.secrets.encryptionKey.toString('hex'));
  secrets.push(...config.oldPasswordPeppers, ...config.oldEncryptionKeys.map((k) => k.toString('hex')));
  for (const { settings } of config.backupHosts.hosts) {
    if ('privateKeyPassphrase' in settings && settings.privateKeyPassphrase) secrets.push(settings.privateKeyPassphrase);
  }
  const key = env.ARCHWAY_ENCRYPTION_KEY;
  if (key) secrets.push(key);
  return secrets;
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

// Entry of `archway-dispatcher <action>`: checks the action word, reads one JSON request, answers once, logs once.
import {
  errorAnswer,
  exitCodeFor,
  isAction,
  isArchiveId,
  isLocalAction,
  okAnswer,
  parseRequest,
  type Action,
  type Answer,
  type CheckFinding,
  type Requests,
  EXIT_REFUSED,
} from '../protocol/index.js';
import { armArchive } from './arm.js';
import { archiveStatus, cancelArchive, createArchive } from './archives.js';
import { listBackups } from './backups.js';
import { BUILDER_WORD, runBuilder } from './builder.js';
import { CallLog } from './call-log.js';
import { runCheck } from './check.js';
import { loadConfig, type DispatcherConfig } from './config.js';
import { eventsSince } from './events.js';
import { DispatcherFailure, fail } from './failure.js';
import { initState, paths } from './layout.js';
import { issueLink } from './links.js';
import { ping } from './ping.js';
import { readCapped } from './stdin.js';
import { runSweep } from './sweep.js';
import { runWatch } from './watch.js';

async function perform(cfg: DispatcherConfig, action: Action, req: unknown, log: CallLog): Promise<unknown> {
  switch (action) {
    case 'ping':
      return ping(cfg);
    case 'backups.list':
      return listBackups(cfg, req as Requests['backups.list']);
    case 'archive.create':
      return createArchive(cfg, req as Requests['archive.create']);
    case 'archive.status':
      return archiveStatus(cfg, req as Requests['archive.status']);
    case 'archive.cancel':
      return cancelArchive(cfg, req as Requests['archive.cancel']);
    case 'archive.arm':
      return armArchive(cfg, req as Requests['archive.arm']);
    case 'link.issue':
      return issueLink(cfg, req as Requests['link.issue']);
    case 'events.since': {
      const r = req as Requests['events.since'];
      return eventsSince(cfg, r.after, r.limit ?? 1000);
    }
    case 'watch':
      return runWatch(cfg, (d) => log.write('note', d));
    case 'sweep':
      return runSweep(cfg, (d) => log.write('note', d));
    case 'check':
      return runCheck(cfg);
  }
}

/** Runs one call and returns the answer; every refusal or error arrives here as a DispatcherFailure. */
async function call(argv: string[], log: CallLog): Promise<Answer<unknown>> {
  // Exactly one word: extra words, spaces or newlines in SSH_ORIGINAL_COMMAND never reach an action.
  const word = argv.length === 1 ? argv[0] : undefined;
  if (!isAction(word)) fail('Unknown action.', `refused command line ${JSON.stringify(argv.join(' ').slice(0, 200))}`);
  // watch, sweep and check change or reveal host state; sudoers never allows them, and neither do we.
  if (isLocalAction(word) && process.env.SSH_CONNECTION) fail('Unknown action.', `local action ${word} refused over SSH`);
  let cfg: DispatcherConfig;
  try {
    cfg = loadConfig();
  } catch (e) {
    fail('The backup host is not configured correctly.', `config: ${e instanceof Error ? e.message : String(e)}`, 'internal');
  }
  log.useFile(paths.callLog(cfg));
  initState(cfg);
  let req: unknown = {};
  if (!isLocalAction(word)) {
    const { bytes, tooLarge } = await readCapped(cfg.maxRequestBytes);
    if (tooLarge) fail('The request is too large.', `stdin over ${cfg.maxRequestBytes} bytes`);
    const parsed = parseRequest(word, bytes, cfg.maxRequestBytes);
    if (!parsed.ok) fail(`Bad request: ${parsed.problem}.`, `bad request: ${parsed.problem}`);
    req = parsed.value;
  }
  log.request = req;
  const result = await perform(cfg, word, req, log);
  return okAnswer(result);
}

// Fields safe to log: ids, names and addresses. The token (and its hash) never are.
const LOGGED_FIELDS = ['customer', 'snapshot', 'archiveId', 'clientIp', 'after', 'limit'] as const;

function describe(req: unknown, result: unknown): string {
  const parts: string[] = [];
  const r = (req ?? {}) as Record<string, unknown>;
  for (const k of LOGGED_FIELDS) if (r[k] !== undefined) parts.push(`${k}=${String(r[k])}`);
  const res = (result ?? {}) as Record<string, unknown>;
  for (const k of ['archiveId', 'state', 'expires'] as const)
    if (res[k] !== undefined && r[k] === undefined) parts.push(`${k}=${String(res[k])}`);
  return parts.join(' ') || 'done';
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  if (argv[0] === BUILDER_WORD && argv.length === 2 && isArchiveId(argv[1]) && !process.env.SSH_CONNECTION) {
    const log = new CallLog(BUILDER_WORD);
    const cfg = loadConfig();
    log.useFile(paths.callLog(cfg));
    return runBuilder(cfg, argv[1]!, (d) => log.write('note', d));
  }
  const log = new CallLog(isAction(argv[0]) && argv.length === 1 ? argv[0] : 'invalid');
  let answer: Answer<unknown>;
  let detail: string;
  try {
    answer = await call(argv, log);
    detail = describe(log.request, answer.ok ? answer.result : null);
  } catch (e) {
    if (e instanceof DispatcherFailure) {
      answer = errorAnswer(e.code, e.userMessage);
      detail = `${e.logDetail}${log.request ? ` (${describe(log.request, null)})` : ''}`;
    } else {
      // Unexpected errors: the caller learns nothing about paths or internals; the log gets it all.
      answer = errorAnswer('internal', 'The backup host could not complete the request.');
      detail = e instanceof Error ? `${e.message} ${e.stack?.split('\n').slice(1, 4).join(' ') ?? ''}` : String(e);
    }
  }
  let code = exitCodeFor(answer);
  if (answer.ok && argv[0] === 'check') {
    // The installer reads these lines; the JSON answer on stdout carries the same findings.
    const { findings } = answer.result as { findings: CheckFinding[] };
    for (const f of findings) process.stderr.write(`${f.ok ? 'ok  ' : 'BAD '} ${f.what}: ${f.detail}\n`);
    if (findings.some((f) => !f.ok)) code = EXIT_REFUSED;
  }
  log.write(answer.ok ? 'done' : answer.error.code, detail);
  process.stdout.write(`${JSON.stringify(answer)}\n`);
  return code;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`archway-dispatcher: ${String(e)}\n`);
    process.exitCode = 2;
  },
);

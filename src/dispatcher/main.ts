// Front door of `archway-dispatcher <action>`: one allowed word, one capped JSON request, one answer, one log line.
// Everything behind the door (archives, links, watch, sweep, locks, state) is in ./engine (see README.md).
import {
  errorAnswer,
  exitCodeFor,
  isAction,
  isArchiveId,
  isLocalAction,
  okAnswer,
  parseRequest,
  type Answer,
  EXIT_REFUSED,
} from '../protocol/index.js';
import { CallLog, describeCall } from './call-log.js';
import {
  BUILDER_WORD,
  DispatcherFailure,
  fail,
  initState,
  loadConfig,
  paths,
  perform,
  reportFindings,
  runBuilder,
  type DispatcherConfig,
} from './engine/index.js';
import { readCapped } from './stdin.js';

/** Runs one call and returns the answer; every refusal or error arrives here as a DispatcherFailure. */
async function call(argv: string[], log: CallLog): Promise<Answer<unknown>> {
  // Exactly one word: extra words, spaces or newlines in SSH_ORIGINAL_COMMAND never reach an action.
  const word = argv.length === 1 ? argv[0] : undefined;
  if (!isAction(word)) fail('unknown_action', `refused command line ${JSON.stringify(argv.join(' ').slice(0, 200))}`);
  // watch, sweep and check change or reveal host state; sudoers never allows them, and neither do we.
  if (isLocalAction(word) && process.env.SSH_CONNECTION) fail('unknown_action', `local action ${word} refused over SSH`);
  let cfg: DispatcherConfig;
  try {
    cfg = loadConfig();
  } catch (e) {
    fail('misconfigured', `config: ${e instanceof Error ? e.message : String(e)}`);
  }
  log.useFile(paths.callLog(cfg), paths.callLogMutex(cfg));
  initState(cfg);
  let req: unknown = {};
  if (!isLocalAction(word)) {
    const { bytes, tooLarge } = await readCapped(cfg.maxRequestBytes);
    if (tooLarge) fail('bad_request', `stdin over ${cfg.maxRequestBytes} bytes`, 'bad request: too large');
    const parsed = parseRequest(word, bytes, cfg.maxRequestBytes);
    if (!parsed.ok) fail('bad_request', `bad request: ${parsed.problem}`, `bad request: ${parsed.problem}`);
    req = parsed.value;
  }
  log.request = req;
  return okAnswer(await perform(cfg, word, req, (d) => log.write('note', d)));
}

async function main(argv: string[]): Promise<number> {
  // The detached builder that archive.create starts; a hidden word, never an action, never over SSH.
  if (argv[0] === BUILDER_WORD && argv.length === 2 && isArchiveId(argv[1]) && !process.env.SSH_CONNECTION) {
    const log = new CallLog(BUILDER_WORD);
    const cfg = loadConfig();
    log.useFile(paths.callLog(cfg), paths.callLogMutex(cfg));
    return runBuilder(cfg, argv[1], (d) => log.write('note', d));
  }
  const log = new CallLog(isAction(argv[0]) && argv.length === 1 ? argv[0] : 'invalid');
  let answer: Answer<unknown>;
  let detail: string;
  try {
    answer = await call(argv, log);
    detail = describeCall(log.request, answer.ok ? answer.result : null);
  } catch (e) {
    // Unexpected errors: the caller learns nothing about paths or internals; the log gets it all.
    const stack = e instanceof Error ? `${e.message} ${e.stack?.split('\n').slice(1, 4).join(' ') ?? ''}` : String(e);
    const failure = e instanceof DispatcherFailure ? e : new DispatcherFailure('internal', null, stack);
    answer = errorAnswer(failure.reason, failure.operatorMessage);
    detail = `${failure.reason}: ${failure.logDetail}${log.request ? ` (${describeCall(log.request, null)})` : ''}`;
  }
  let code = exitCodeFor(answer);
  // The installer reads check's findings on stderr; the JSON answer on stdout carries the same.
  if (answer.ok && argv[0] === 'check' && !reportFindings(answer.result)) code = EXIT_REFUSED;
  log.write(answer.ok ? 'done' : answer.error.code, detail);
  process.stdout.write(`${JSON.stringify(answer)}\n`);
  return code;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`archway-dispatcher: ${String(e)}\n`);
    process.exitCode = 2;
  },
);

// The dispatcher's version: what `ping` reports and what the portal built from the same source expects.
// 0.2.0: refusals carry a reason from REFUSAL_REASONS, which the portal words (0.1.0 sent customer sentences).
// 0.3.0: archive.list (a customer's live archives, to adopt an orphaned build); link.issue says lifetimeSeconds.
// 0.4.0: sweep removes client addresses older than ipRetentionDays from its logs and reports the counts, so
// `doctor` tells an operator whose backup host would still keep them for ever.
// 0.5.0: archive.statuses answers archive.status for up to MAX_ARCHIVE_STATUSES archives in one call.
// 0.6.0: watch counts delivered byte ranges (the vhost logs each answer's Content-Range) and download events say
// what was delivered so far, so an interrupted download resumes.
// 0.6.1: maxRequestBytes may not be set below the 64 KiB the portal sizes its archive.statuses batches to;
// watch writes a completed download's event that a crash after its record had lost.
export const DISPATCHER_VERSION = '0.6.1';

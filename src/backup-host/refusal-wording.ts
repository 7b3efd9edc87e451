// Every sentence a customer reads when the backup host refuses a call: the dispatcher sends a reason, the portal words it.
import type { RefusalReason } from '../protocol/index.js';

export const UNAVAILABLE_WORDING = 'The backup service is not available right now. Please try again in a few minutes.';
const NOT_AVAILABLE = 'This archive is not available for download.';

const WORDING: Readonly<Record<RefusalReason, string>> = {
  unknown_action: 'The backup host refused the request.',
  bad_request: 'The backup host refused the request.',
  build_running: 'An archive for this customer is already being built; please wait until it is ready.',
  no_space: 'The backup host does not have enough free space for this archive right now.',
  not_ready: NOT_AVAILABLE,
  downloaded: 'This archive has already been downloaded.',
  expired: 'This archive has expired.',
  bad_token: 'This download link is not valid any more. Please use the newest email, or ask for the link again.',
  outside_backup: 'No such backup.',
  already_running: 'The backup host refused the request.',
  not_found: 'No such archive.',
  no_backups: 'No backups found for this customer.',
  no_such_backup: 'No such backup.',
  quota_ready:
    'You already have as many archives ready to download as this backup host allows. Please download one (or wait until one expires) before asking for another.',
  quota_builds: 'You have asked for as many archives as this backup host allows in one day. Please try again tomorrow.',
  quota_links: 'This backup host has made as many download links for you as it allows in one hour. Please try again in an hour.',
  busy: 'The backup service is handling too many requests right now. Please try again in an hour.',
  misconfigured: UNAVAILABLE_WORDING,
  internal: UNAVAILABLE_WORDING,
};

/** The customer's sentence for a refusal reason. */
export function refusalWording(reason: RefusalReason): string {
  return WORDING[reason];
}

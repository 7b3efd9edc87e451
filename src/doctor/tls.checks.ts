// Doctor check of the public URL's TLS certificate: trusted, for this name, and not about to expire.
import { isIP } from 'node:net';
import tls from 'node:tls';
import { describeError, fail, notApplicable, pass, type CheckResult } from './check-result.js';

const CERTIFICATE = ['tls.certificate', 'TLS certificate of the public URL'] as const;

/** Renewal (certbot, acme.sh) runs 30 days ahead; 14 days left means it has been failing for two weeks. */
const MIN_DAYS_LEFT = 14;
const DAY_MS = 24 * 60 * 60 * 1000;

interface Presented {
  authorized: boolean;
  authorizationError: string | null;
  validTo: number;
}

export async function checkPublicCertificate(publicUrl: string, now: () => number): Promise<CheckResult> {
  const url = new URL(publicUrl);
  if (url.protocol !== 'https:')
    return notApplicable(...CERTIFICATE, `ARCHWAY_PUBLIC_URL is ${url.protocol}// (TLS is for production, at the portal's NGINX)`);
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = url.port === '' ? 443 : Number(url.port);
  const renew = "renew the certificate of the portal's NGINX (and check that automatic renewal runs), then reload NGINX";
  let presented: Presented;
  try {
    presented = await fetchCertificate(host, port);
  } catch (error) {
    return fail(
      ...CERTIFICATE,
      `${url.host} did not complete a TLS handshake: ${describeError(error)}`,
      "make sure the portal's NGINX listens there with TLS",
    );
  }
  if (!presented.authorized) {
    return fail(
      ...CERTIFICATE,
      `${url.host} presented a certificate this machine does not trust (${presented.authorizationError})`,
      'install a certificate for this exact name from a public CA, with its whole chain (fullchain.pem)',
    );
  }
  const msLeft = presented.validTo - now();
  const daysLeft = Math.floor(msLeft / DAY_MS);
  const until = new Date(presented.validTo).toISOString().slice(0, 10);
  if (msLeft < MIN_DAYS_LEFT * DAY_MS)
    return fail(...CERTIFICATE, `${url.host}: expires ${until}, in ${daysLeft} days (less than ${MIN_DAYS_LEFT})`, renew);
  return pass(...CERTIFICATE, `${url.host}: trusted, valid until ${until} (${daysLeft} days)`);
}

/** Completes a handshake without refusing a bad certificate, so the reason can be reported instead of a bare error. */
function fetchCertificate(host: string, port: number): Promise<Presented> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host, port, rejectUnauthorized: false, ...(isIP(host) === 0 ? { servername: host } : {}) });
    socket.setTimeout(10_000, () => socket.destroy(new Error('no answer within 10 s')));
    socket.once('error', reject);
    socket.once('secureConnect', () => {
      const certificate = socket.getPeerCertificate();
      socket.end();
      resolve({
        authorized: socket.authorized,
        // Node sets it to the OpenSSL code (a string), whatever @types/node says.
        authorizationError: socket.authorized ? null : String(socket.authorizationError),
        validTo: Date.parse(certificate.valid_to),
      });
    });
  });
}

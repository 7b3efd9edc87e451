// A browser-like client over app.inject(): keeps cookies, and posts forms with the CSRF token of the page they came from.
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';

export interface Page {
  status: number;
  body: string;
  headers: LightMyRequestResponse['headers'];
  location: string | undefined;
  response: LightMyRequestResponse;
}

export interface ClientOptions {
  /** Extra headers on every request (e.g. a trusted proxy's X-Forwarded-Proto/-For). */
  headers?: Record<string, string>;
  remoteAddress?: string;
}

/** The `_csrf` value of the first form in the HTML, or undefined. */
export function csrfTokenIn(html: string): string | undefined {
  return /name="_csrf" value="([^"]+)"/.exec(html)?.[1];
}

export class WebClient {
  /** Cookies the app has set and not cleared, by name. */
  readonly cookies = new Map<string, string>();
  lastPage: Page | undefined;

  constructor(
    private readonly app: FastifyInstance,
    private readonly options: ClientOptions = {},
  ) {}

  cookieHeader(): string {
    return [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; ');
  }

  async request(options: InjectOptions): Promise<Page> {
    const headers: Record<string, string> = { ...this.options.headers, ...(options.headers as Record<string, string> | undefined) };
    if (this.cookies.size > 0 && headers.cookie === undefined) headers.cookie = this.cookieHeader();
    const response = await this.app.inject({
      ...options,
      headers,
      ...(this.options.remoteAddress ? { remoteAddress: this.options.remoteAddress } : {}),
    });
    for (const cookie of response.cookies as Array<{ name: string; value: string; expires?: Date; maxAge?: number }>) {
      const gone = cookie.value === '' || (cookie.expires !== undefined && cookie.expires.getTime() <= Date.now()) || cookie.maxAge === 0;
      if (gone) this.cookies.delete(cookie.name);
      else this.cookies.set(cookie.name, cookie.value);
    }
    const location = response.headers.location as string | undefined;
    const page = { status: response.statusCode, body: response.body, headers: response.headers, location, response };
    this.lastPage = page;
    return page;
  }

  get(url: string, headers: Record<string, string> = {}): Promise<Page> {
    return this.request({ method: 'GET', url, headers });
  }

  /** Posts a form; `_csrf` defaults to the token on the last page fetched, as a browser would send it. */
  post(url: string, form: Record<string, string>, headers: Record<string, string> = {}): Promise<Page> {
    const token = this.lastPage ? csrfTokenIn(this.lastPage.body) : undefined;
    const fields = { ...(token !== undefined ? { _csrf: token } : {}), ...form };
    return this.request({
      method: 'POST',
      url,
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
      payload: new URLSearchParams(fields).toString(),
    });
  }

  /** Opens the sign-in page and signs in; returns the answer to the POST. */
  async signIn(email: string, password: string): Promise<Page> {
    await this.get('/sign-in');
    return this.post('/sign-in', { email, password });
  }
}

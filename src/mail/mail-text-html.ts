// A plain-text email shown as HTML in the outbox and the first-look Mailbox, with nothing of it trusted.

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c] ?? c);
}

/**
 * The text as HTML, every character escaped, with addresses on this portal turned into links so
 * a newcomer can click the invitation; any other address stays text, so no mail can link elsewhere.
 */
export function textWithPortalLinks(text: string, publicUrl: string): string {
  const origin = publicUrl.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  // An address starts after white space and its origin ends at a path, white space or the end,
  // so neither http://host:30001, http://host:3000@elsewhere nor ...?next=http://host:3000/ matches.
  const portalAddress = new RegExp(`(?<=^|\\s)${origin}(?:/[^\\s<>"']*|(?=\\s|$))`, 'g');
  let html = '';
  let last = 0;
  for (const match of text.matchAll(portalAddress)) {
    const address = escapeHtml(match[0]);
    html += `${escapeHtml(text.slice(last, match.index))}<a href="${address}">${address}</a>`;
    last = match.index + match[0].length;
  }
  return html + escapeHtml(text.slice(last));
}

/**
 * Registered only in first-look mode: with a real SMTP relay there is no outbox, and the
 * addresses answer 404. The mail's HTML is never rendered; its text part is shown escaped.
 */

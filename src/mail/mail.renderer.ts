// Renders an email from views/emails/<template>.txt.eta and .html.eta, each inside its layout.
import path from 'node:path';
import { Eta } from 'eta';
import { VIEWS_DIR } from '../paths.js';

export interface RenderedMail {
  subject: string;
  text: string;
  html: string;
}

export class UnknownMailTemplate extends Error {
  constructor(readonly template: string) {
    super(`There is no email template "${template}" in views/emails/.`);
    this.name = 'UnknownMailTemplate';
  }
}

export class MailTemplateWithoutSubject extends Error {
  constructor(readonly template: string) {
    super(`views/emails/${template}.txt.eta must begin with a "Subject: ..." line and a blank line.`);
    this.name = 'MailTemplateWithoutSubject';
  }
}

const TEMPLATE_NAME = /^[a-z0-9]+(-[a-z0-9]+)*$/;
const SUBJECT_LINE = /^Subject: *([^\n]*)\n\n?/;

// Text is not HTML: escaping it would show "&amp;" to the reader. HTML escapes every value.
// Templates are read from disk for every message; mail is rare enough that a cache buys nothing.
const textEta = new Eta({ views: path.join(VIEWS_DIR, 'emails'), autoEscape: false, autoTrim: [false, 'nl'] });
const htmlEta = new Eta({ views: path.join(VIEWS_DIR, 'emails'), autoEscape: true, autoTrim: [false, 'nl'] });

/**
 * The subject is the text template's first line ("Subject: ..."), so one file holds all the
 * words of a message. Data values are trusted to be plain strings or numbers, never markup.
 */
export function renderMail(template: string, data: Record<string, unknown>): RenderedMail {
  // The name becomes a file path; only plain names may reach the file system.
  if (!TEMPLATE_NAME.test(template)) throw new UnknownMailTemplate(template);
  let textBody: string;
  let htmlBody: string;
  try {
    textBody = textEta.render(`./${template}.txt.eta`, data);
    htmlBody = htmlEta.render(`./${template}.html.eta`, data);
  } catch (error) {
    if (/Could not find template|ENOENT/i.test((error as Error).message)) throw new UnknownMailTemplate(template);
    throw error;
  }
  const subjectMatch = SUBJECT_LINE.exec(textBody);
  if (!subjectMatch) throw new MailTemplateWithoutSubject(template);
  // A line break in a header would start a new header; a subject is one line.
  const subject = (subjectMatch[1] ?? '').replace(/\s+/g, ' ').trim();
  const layoutData = { ...data, subject };
  return {
    subject,
    text: textEta.render('./layout.txt.eta', { ...layoutData, body: textBody.slice(subjectMatch[0].length) }),
    html: htmlEta.render('./layout.html.eta', { ...layoutData, body: htmlBody }),
  };
}

// The command lines that resume an interrupted download from a fresh link, as the download page shows them.

/** One shell word: single quotes, with any quote inside closed, escaped and reopened. */
function shellQuote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/** curl and wget each continue the partial file from its own length with a Range request; NGINX answers 206. */
export function resumeCommands(fileName: string, url: string): { curl: string; wget: string } {
  // Archive file names are plain words ([A-Za-z0-9._-]); anything else is quoted all the same.
  const file = /^[A-Za-z0-9._-]+$/.test(fileName) ? fileName : shellQuote(fileName);
  const link = shellQuote(url);
  return { curl: `curl -C - -o ${file} ${link}`, wget: `wget -c -O ${file} ${link}` };
}

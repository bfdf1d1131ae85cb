import { readFileSync } from 'node:fs';

/**
 * The files of docs/getting-started.md: each fenced code block right after a
 * `<!-- file: NAME -->` line. The consumer test writes them into its project,
 * so the page's code is the code the test runs and cannot drift from it.
 */
export function docFiles(markdownPath: string): Map<string, string> {
  const text = readFileSync(markdownPath, 'utf8');
  const files = new Map<string, string>();
  const block = /<!-- file: ([\w.-]+) -->\s*\n```\w*\n([\s\S]*?)\n```/g;
  for (const m of text.matchAll(block)) {
    const [, name, body] = m;
    if (name === undefined || body === undefined) continue;
    if (files.has(name)) throw new Error(`${markdownPath}: file ${name} appears twice`);
    files.set(name, `${body}\n`);
  }
  return files;
}

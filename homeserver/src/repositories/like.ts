/**
 * A LIKE/ILIKE pattern matching `text` anywhere, literally: `%`, `_` and the escape character
 * `\` (Postgres's default ESCAPE) in user input are escaped, so a search for `_` finds an
 * underscore rather than every row, and cannot be used to probe hidden text a character at
 * a time (issue 10, M4).
 */
export function containsPattern(text: string): string {
  return `%${text.replace(/[%_\\]/g, '\\$&')}%`;
}

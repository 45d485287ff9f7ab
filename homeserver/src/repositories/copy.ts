import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import type { Db } from '../db/database.js';

/** A value COPY's text format can carry: null is `\N`, everything else its text form. */
export type CopyValue = string | number | boolean | null;

const quote = (name: string) => `"${name.replaceAll('"', '""')}"`;

/** COPY text format (PostgreSQL docs, COPY "Text Format"): backslash, newline, CR and tab escaped. */
function field(value: CopyValue): string {
  if (value === null) return '\\N';
  const text = String(value);
  return /[\\\n\r\t]/.test(text) ? text.replace(/[\\\n\r\t]/g, (c) => ESCAPES[c] as string) : text;
}

const ESCAPES: Record<string, string> = { '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t' };

function* lines(rows: readonly CopyValue[][]): Generator<string> {
  // A few hundred rows per chunk: the text of a whole snapshot is never one string.
  for (let i = 0; i < rows.length; i += 500) {
    let chunk = '';
    for (const row of rows.slice(i, i + 500)) chunk += `${row.map(field).join('\t')}\n`;
    yield chunk;
  }
}

/**
 * Inserts `rows` (values in `columns` order) with one COPY on the transaction's own connection:
 * thousands of rows cost one statement and no bind parameters (a multi-row INSERT of a large
 * snapshot spent most of its time building and binding the statement). COPY has no ON
 * CONFLICT: only for rows that cannot exist yet (e.g. of a room created in this transaction).
 */
export async function copyRows(trx: Db, table: string, columns: readonly string[], rows: readonly CopyValue[][]): Promise<void> {
  if (rows.length === 0) return;
  if (!trx.isTransaction) throw new TypeError('copyRows: expected a transaction');
  // Inside a transaction knex hands out the transaction's connection (and keeps it).
  const conn = (await trx.client.acquireConnection()) as pg.Client;
  const sink = conn.query(copyFrom(`copy ${quote(table)} (${columns.map(quote).join(', ')}) from stdin`));
  await pipeline(Readable.from(lines(rows)), sink);
}

import type { Knex } from 'knex';

// Uploaded files. The bytes live on disk under data_dir/media; this row is what makes a
// file exist (a file without a row is an orphan from a crash and is never served).
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('media', (t) => {
    t.text('media_id').primary();
    // RESTRICT: deleting a user must first decide what happens to their files on disk.
    t.text('uploader').notNullable().references('user_id').inTable('users').onDelete('RESTRICT');
    // Sniffed from the bytes; the only type we ever serve.
    t.text('content_type').notNullable();
    // What the client claimed, kept for diagnostics only.
    t.text('client_content_type');
    t.text('filename');
    t.bigInteger('size').notNullable();
    t.text('sha256').notNullable();
    t.bigInteger('created_ts').notNullable();
    // Quota sums scan one uploader's rows.
    t.index(['uploader']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('media');
}

import type { Knex } from 'knex';

// Other servers' key documents as this server verified them (issue 10, L5): a key ID keeps the
// public key first accepted for it across restarts too, so a changed key is refused, not
// silently trusted after the in-memory cache starts over. One row per distinct document.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('server_key_documents', (t) => {
    t.text('server_name').notNullable();
    t.bigInteger('valid_until_ts').notNullable();
    t.bigInteger('fetched_ts').notNullable();
    t.jsonb('document').notNullable();
    t.primary(['server_name', 'valid_until_ts']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('server_key_documents');
}

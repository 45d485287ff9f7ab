import type { Knex } from 'knex';

// End-to-end encryption (docs/protocol.md, "End-to-end encryption (MLS)"): the server keeps only opaque client material — MLS key
// packages (one-time ones are deleted as they are claimed), users' signed device lists (and a
// cache of other servers' users' lists), encrypted key backups — and, per encrypted room it
// hosts or follows, the MLS epoch the sequenced commits have reached (first commit wins).
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('key_packages', (t) => {
    t.bigIncrements('id').primary();
    t.text('user_id').notNullable();
    t.text('device_id').notNullable();
    // SHA-256 of the package bytes (base64url): the same upload twice stores one row.
    t.text('ref').notNullable();
    t.text('key_package').notNullable();
    t.boolean('last_resort').notNullable().defaultTo(false);
    t.bigInteger('created_ts').notNullable();
    t.unique(['user_id', 'device_id', 'ref']);
    t.index(['user_id', 'device_id', 'last_resort', 'id']);
  });
  await knex.schema.createTable('device_lists', (t) => {
    t.text('user_id').primary();
    t.bigInteger('version').notNullable();
    t.jsonb('signed').notNullable();
    t.bigInteger('updated_ts').notNullable();
  });
  await knex.schema.createTable('remote_device_lists', (t) => {
    t.text('user_id').primary();
    t.text('server').notNullable();
    // 0 while the user has not signed a list yet (only signed-in devices are known).
    t.bigInteger('version').notNullable();
    t.jsonb('answer').notNullable();
    t.bigInteger('updated_ts').notNullable();
  });
  await knex.schema.createTable('key_backups', (t) => {
    t.text('user_id').primary();
    t.integer('version').notNullable();
    t.text('algorithm').notNullable();
    t.text('ciphertext').notNullable();
    t.bigInteger('updated_ts').notNullable();
  });
  await knex.schema.createTable('room_mls_epochs', (t) => {
    t.text('room_id').primary();
    t.bigInteger('epoch').notNullable();
    t.bigInteger('seq').notNullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('room_mls_epochs');
  await knex.schema.dropTable('key_backups');
  await knex.schema.dropTable('remote_device_lists');
  await knex.schema.dropTable('device_lists');
  await knex.schema.dropTable('key_packages');
}

import type { Knex } from 'knex';

// Accounts, devices and their tokens. Times are epoch milliseconds (bigint).
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('users', (t) => {
    t.text('user_id').primary();
    t.text('localpart').notNullable().unique();
    t.text('password_hash');
    t.boolean('is_admin').notNullable().defaultTo(false);
    t.boolean('deactivated').notNullable().defaultTo(false);
    t.text('displayname');
    t.text('avatar_url');
    t.bigInteger('created_ts').notNullable();
  });

  await knex.schema.createTable('devices', (t) => {
    t.bigIncrements('id').primary();
    t.text('user_id').notNullable().references('user_id').inTable('users').onDelete('CASCADE');
    t.text('device_id').notNullable();
    t.text('display_name');
    t.bigInteger('created_ts').notNullable();
    t.bigInteger('last_seen_ts');
    t.text('last_seen_ip');
    t.unique(['user_id', 'device_id']);
  });

  // Tokens are `<kind>_<id>_<secret>`: looked up by id, secret compared in constant time
  // against its SHA-256. Deleting a device cascades to every token it holds.
  await knex.schema.createTable('access_tokens', (t) => {
    t.text('id').primary();
    t.bigInteger('device_pk').notNullable().references('id').inTable('devices').onDelete('CASCADE');
    t.binary('secret_hash').notNullable();
    t.bigInteger('created_ts').notNullable();
    t.bigInteger('expires_ts').notNullable();
    t.index(['device_pk']);
  });

  await knex.schema.createTable('refresh_tokens', (t) => {
    t.text('id').primary();
    t.bigInteger('device_pk').notNullable().references('id').inTable('devices').onDelete('CASCADE');
    t.binary('secret_hash').notNullable();
    t.bigInteger('created_ts').notNullable();
    t.bigInteger('expires_ts').notNullable();
    // Set once the token has been exchanged; presenting it again means it leaked.
    t.bigInteger('used_ts');
    t.index(['device_pk']);
  });

  await knex.schema.createTable('registration_tokens', (t) => {
    t.text('token').primary();
    t.integer('uses_allowed');
    t.integer('uses_completed').notNullable().defaultTo(0);
    t.bigInteger('expires_ts');
    t.bigInteger('created_ts').notNullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('registration_tokens');
  await knex.schema.dropTable('refresh_tokens');
  await knex.schema.dropTable('access_tokens');
  await knex.schema.dropTable('devices');
  await knex.schema.dropTable('users');
}

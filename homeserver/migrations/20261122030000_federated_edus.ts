import type { Knex } from 'knex';

// Ephemeral data over federation: typing, presence and receipts are state (the latest wins),
// so a newer row replaces an undelivered older one with the same key; to-device messages are
// deduplicated by the receiver per (origin, message_id).
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('outbox', (t) => {
    t.text('coalesce_key');
  });
  await knex.raw(
    'CREATE INDEX outbox_coalesce_idx ON outbox (destination, coalesce_key) WHERE delivered_ts IS NULL AND expired_ts IS NULL AND coalesce_key IS NOT NULL',
  );
  await knex.schema.createTable('inbound_to_device', (t) => {
    t.text('origin').notNullable();
    t.text('message_id').notNullable();
    t.bigInteger('received_ts').notNullable();
    t.primary(['origin', 'message_id']);
    t.index(['received_ts']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('inbound_to_device');
  await knex.raw('DROP INDEX IF EXISTS outbox_coalesce_idx');
  await knex.schema.alterTable('outbox', (t) => {
    t.dropColumn('coalesce_key');
  });
}

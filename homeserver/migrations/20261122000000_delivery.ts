import type { Knex } from 'knex';

// Durable federation delivery (docs/architecture.md, "The path of a message"): the outbox is the truth, the queue a schedule.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('outbox', (t) => {
    t.bigIncrements('id').primary();
    t.text('destination').notNullable();
    // 'event' (room events and records, in order) or 'edu' (typing, receipts, presence).
    t.text('kind').notNullable();
    t.jsonb('payload').notNullable();
    t.bigInteger('created_ts').notNullable();
    t.bigInteger('expires_ts').notNullable();
    t.bigInteger('delivered_ts');
    // Set instead of delivered_ts when the TTL ran out first: reported, never silent.
    t.bigInteger('expired_ts');
  });
  await knex.raw('CREATE INDEX outbox_pending_idx ON outbox (destination, id) WHERE delivered_ts IS NULL AND expired_ts IS NULL');

  await knex.schema.createTable('destinations', (t) => {
    t.text('name').primary();
    t.text('state').notNullable(); // up | backing_off | down
    t.integer('failures').notNullable().defaultTo(0);
    t.bigInteger('next_try_ts');
    t.bigInteger('since_ts');
    t.bigInteger('last_success_ts');
    t.text('last_error');
  });

  // Receivers deduplicate transactions by (origin, txn_id).
  await knex.schema.createTable('inbound_txns', (t) => {
    t.text('origin').notNullable();
    t.text('txn_id').notNullable();
    t.bigInteger('received_ts').notNullable();
    t.primary(['origin', 'txn_id']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('inbound_txns');
  await knex.schema.dropTable('destinations');
  await knex.schema.dropTable('outbox');
}

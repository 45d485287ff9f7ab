import type { Knex } from 'knex';

// Mailbox queues unused for the retention period are removed (docs/protocol.md). The hour a
// queue was last sent to or read (rounded down, so it says little about when) is kept for that.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('mailbox_queues', (t) => {
    t.bigInteger('last_used_ts').notNullable().defaultTo(0);
  });
  await knex.raw('update mailbox_queues set last_used_ts = created_ts - created_ts % 3600000');
  await knex.raw('create index mailbox_queues_last_used on mailbox_queues (last_used_ts)');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop index if exists mailbox_queues_last_used');
  await knex.schema.alterTable('mailbox_queues', (t) => {
    t.dropColumn('last_used_ts');
  });
}

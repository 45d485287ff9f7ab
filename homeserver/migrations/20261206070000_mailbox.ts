import type { Knex } from 'knex';

// Mailbox queues (docs/protocol.md, "Mailbox queues"). Deliberately no user, device or token column: the
// queue key alone authenticates the receiver, so nothing here links a queue to an account.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('mailbox_queues', (t) => {
    t.bigIncrements('id').primary();
    t.string('receive_id', 32).notNullable().unique();
    t.string('send_id', 32).notNullable().unique();
    t.string('queue_key', 43).notNullable();
    t.bigInteger('created_ts').notNullable();
  });
  await knex.schema.createTable('mailbox_messages', (t) => {
    t.bigIncrements('seq').primary();
    t.bigInteger('queue_id').notNullable().references('id').inTable('mailbox_queues').onDelete('CASCADE');
    t.string('msg_id', 22).notNullable();
    // Always exactly the configured block size (length prefix, blob, zeros).
    t.binary('block').notNullable();
    t.bigInteger('created_ts').notNullable();
    t.bigInteger('expires_ts').notNullable();
    t.unique(['queue_id', 'msg_id']);
  });
  await knex.raw('create index mailbox_messages_queue on mailbox_messages (queue_id, seq)');
  await knex.raw('create index mailbox_messages_expiry on mailbox_messages (expires_ts)');
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('mailbox_messages');
  await knex.schema.dropTableIfExists('mailbox_queues');
}

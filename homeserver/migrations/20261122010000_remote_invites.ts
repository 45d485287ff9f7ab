import type { Knex } from 'knex';

// Invites to rooms this server does not take part in yet: kept until the user joins or declines.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('remote_invites', (t) => {
    t.text('room_id').notNullable();
    t.text('user_id').notNullable();
    t.text('inviter').notNullable();
    t.jsonb('event').notNullable();
    t.bigInteger('created_ts').notNullable();
    t.primary(['room_id', 'user_id']);
    t.index(['user_id']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('remote_invites');
}

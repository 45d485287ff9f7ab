import type { Knex } from 'knex';

// Rooms joined from a state snapshot (docs/protocol.md, "Federation"): the log is complete only from
// `history_from`; older entries are backfilled from the host when someone pages back.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('rooms', (t) => {
    t.integer('history_from').notNullable().defaultTo(1);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('rooms', (t) => {
    t.dropColumn('history_from');
  });
}

import type { Knex } from 'knex';

// Stream retention (issue 10, H1): notes older than `stream.retention_ms` are deleted. The
// horizon records the highest position that may be gone, so a client resuming from below it
// is told to resync instead of silently missing frames.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('stream_horizon', (t) => {
    t.smallint('id').primary();
    t.bigInteger('pruned_through').notNullable().defaultTo(0);
  });
  await knex('stream_horizon').insert({ id: 1, pruned_through: 0 });
  await knex.raw('CREATE INDEX stream_created_ts_idx ON stream (created_ts)');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP INDEX IF EXISTS stream_created_ts_idx');
  await knex.schema.dropTable('stream_horizon');
}

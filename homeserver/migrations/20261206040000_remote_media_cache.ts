import type { Knex } from 'knex';

// Other servers' media cached here is evicted least recently used first (issue 10, M5): each
// cached copy records when it was last served. Our own uploads are never evicted.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('media', (t) => {
    t.bigInteger('last_access_ts');
  });
  await knex.raw('update media set last_access_ts = created_ts where origin is not null');
  await knex.raw('create index media_remote_lru on media (last_access_ts) where origin is not null');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop index if exists media_remote_lru');
  await knex.schema.alterTable('media', (t) => {
    t.dropColumn('last_access_ts');
  });
}

import type { Knex } from 'knex';

// Media fetched from other servers over federation, cached next to our own uploads. A cached
// copy gets its own local media_id (the file's name on disk), so a remote server can never
// pick an ID that lands on, or shadows, one of ours; (origin, remote_media_id) names it.
export async function up(knex: Knex): Promise<void> {
  await knex.raw('alter table media alter column uploader drop not null');
  await knex.schema.alterTable('media', (t) => {
    t.text('origin');
    t.text('remote_media_id');
    t.unique(['origin', 'remote_media_id']);
  });
  await knex.raw(`
    alter table media add constraint media_local_or_remote check (
      (origin is null and remote_media_id is null and uploader is not null)
      or (origin is not null and remote_media_id is not null and uploader is null)
    )`);
}

export async function down(knex: Knex): Promise<void> {
  await knex('media').whereNotNull('origin').delete();
  await knex.raw('alter table media drop constraint media_local_or_remote');
  await knex.schema.alterTable('media', (t) => {
    t.dropUnique(['origin', 'remote_media_id']);
    t.dropColumn('remote_media_id');
    t.dropColumn('origin');
  });
  await knex.raw('alter table media alter column uploader set not null');
}

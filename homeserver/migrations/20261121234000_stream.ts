import type { Knex } from 'knex';

// The stream (docs/architecture.md, "The path of a message"): every frame a client can receive, at a position that only grows.
// Positions are allocated under a transaction-scoped advisory lock taken last in the writing
// transaction, so positions become visible in commit order: once position q is visible,
// every p < q is committed or gone for good.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('stream', (t) => {
    t.bigIncrements('position').primary();
    t.text('kind').notNullable();
    // Room-scoped: joined members of room_id see it unless `private`.
    t.text('room_id');
    t.boolean('private').notNullable().defaultTo(false);
    // User-scoped: this user (optionally only this device) sees it.
    t.text('user_id');
    t.text('device_id');
    // Shared-room-scoped (presence, profile, device lists): members of any of these rooms.
    t.specificType('room_ids', 'text[]');
    t.jsonb('data').notNullable();
    t.bigInteger('created_ts').notNullable();
    t.index(['room_id', 'position']);
    t.index(['user_id', 'position']);
  });
  await knex.raw('CREATE INDEX stream_room_ids_idx ON stream USING GIN (room_ids)');

  await knex.schema.createTable('presence', (t) => {
    t.text('user_id').primary();
    t.text('presence').notNullable();
    t.bigInteger('last_active_ts');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('presence');
  await knex.schema.dropTable('stream');
}

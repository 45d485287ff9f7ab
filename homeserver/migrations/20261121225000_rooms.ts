import type { Knex } from 'knex';

// The room log (docs/protocol.md, "Room events and sequencing records"): events with their sequencing records, the current state, and the
// indexes that serve the hot paths (room log by (room_id, seq), memberships by user).
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('rooms', (t) => {
    t.text('room_id').primary();
    t.text('host').notNullable();
    t.text('creator').notNullable();
    t.text('kind').notNullable();
    t.text('parent_id');
    t.boolean('published').notNullable().defaultTo(false);
    t.integer('current_seq').notNullable().defaultTo(0);
    // Hash of the latest sequencing record: the next record's `prev`.
    t.text('head_hash');
    t.bigInteger('lamport').notNullable().defaultTo(0);
    t.bigInteger('created_ts').notNullable();
  });

  await knex.schema.createTable('events', (t) => {
    t.text('event_id').primary();
    t.text('room_id').notNullable().references('room_id').inTable('rooms').onDelete('CASCADE');
    t.integer('seq').notNullable();
    t.text('type').notNullable();
    t.text('state_key');
    t.text('sender').notNullable();
    t.bigInteger('origin_ts').notNullable();
    // The signed event as stored now (its redacted form once redacted) and its signed record.
    t.jsonb('event').notNullable();
    t.jsonb('record').notNullable();
    // History visibility in force when the event was sequenced (who may read it later).
    t.text('visibility').notNullable();
    t.text('redacted_by');
    t.text('rel_type');
    t.text('rel_event_id');
    t.text('rel_key');
    t.unique(['room_id', 'seq']);
    t.index(['room_id', 'rel_event_id']);
  });
  // Full-text search over message bodies; 'simple' keeps it language-neutral.
  await knex.raw(`
    ALTER TABLE events ADD COLUMN search_tsv tsvector
      GENERATED ALWAYS AS (to_tsvector('simple', coalesce(event->'content'->>'body', ''))) STORED`);
  await knex.raw('CREATE INDEX events_search_tsv_idx ON events USING GIN (search_tsv)');
  // At most one live reaction per (sender, target, key).
  await knex.raw(`
    CREATE UNIQUE INDEX events_one_reaction_idx ON events (rel_event_id, sender, rel_key)
      WHERE rel_type = 'annotation' AND redacted_by IS NULL`);

  await knex.schema.createTable('room_state', (t) => {
    t.text('room_id').notNullable().references('room_id').inTable('rooms').onDelete('CASCADE');
    t.text('type').notNullable();
    t.text('state_key').notNullable();
    t.text('event_id').notNullable();
    t.integer('seq').notNullable();
    t.primary(['room_id', 'type', 'state_key']);
  });

  await knex.schema.createTable('memberships', (t) => {
    t.text('room_id').notNullable().references('room_id').inTable('rooms').onDelete('CASCADE');
    t.text('user_id').notNullable();
    t.text('membership').notNullable();
    t.integer('seq').notNullable();
    t.primary(['room_id', 'user_id']);
    t.index(['user_id', 'membership']);
  });
  // Every membership change, so history visibility can ask "what was this user at seq N".
  await knex.schema.createTable('membership_log', (t) => {
    t.text('room_id').notNullable().references('room_id').inTable('rooms').onDelete('CASCADE');
    t.text('user_id').notNullable();
    t.integer('seq').notNullable();
    t.text('membership').notNullable();
    t.primary(['room_id', 'user_id', 'seq']);
  });

  // Idempotent sends: the same (user, device, txn_id) always names the same event.
  await knex.schema.createTable('txn_ids', (t) => {
    t.text('user_id').notNullable();
    t.text('device_id').notNullable();
    t.text('txn_id').notNullable();
    t.text('room_id').notNullable();
    t.text('event_id').notNullable();
    t.bigInteger('created_ts').notNullable();
    t.primary(['user_id', 'device_id', 'txn_id']);
  });

  await knex.schema.createTable('room_aliases', (t) => {
    t.text('alias').primary();
    t.text('room_id').notNullable().references('room_id').inTable('rooms').onDelete('CASCADE');
    t.text('created_by').notNullable();
    t.bigInteger('created_ts').notNullable();
    t.index(['room_id']);
  });

  await knex.schema.createTable('read_markers', (t) => {
    t.text('room_id').notNullable().references('room_id').inTable('rooms').onDelete('CASCADE');
    t.text('user_id').notNullable();
    t.text('event_id').notNullable();
    t.integer('seq').notNullable();
    t.bigInteger('ts').notNullable();
    t.primary(['room_id', 'user_id']);
  });
}

export async function down(knex: Knex): Promise<void> {
  for (const table of ['read_markers', 'room_aliases', 'txn_ids', 'membership_log', 'memberships', 'room_state', 'events', 'rooms']) {
    await knex.schema.dropTable(table);
  }
}

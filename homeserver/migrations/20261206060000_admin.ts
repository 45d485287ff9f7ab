import type { Knex } from 'knex';

// The admin console (admin/README.md): an append-only audit log, user reports, domain policies
// (blocks and allows, by hand, imported or from a subscribed signed blocklist), blocked
// rooms, quarantined media, long-running admin jobs and periodic dashboard samples.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('admin_audit_log', (t) => {
    t.bigIncrements('id').primary();
    t.bigInteger('ts').notNullable();
    t.text('actor').notNullable();
    t.text('action').notNullable();
    t.text('target');
    t.jsonb('details').notNullable();
    t.text('ip');
    t.index(['ts']);
    t.index(['actor', 'ts']);
    t.index(['action', 'ts']);
  });
  // Append-only in the database itself, not only by convention in the code.
  await knex.raw(`
    CREATE FUNCTION admin_audit_log_append_only() RETURNS trigger AS $$
    BEGIN RAISE EXCEPTION 'admin_audit_log is append-only'; END $$ LANGUAGE plpgsql;
    CREATE TRIGGER admin_audit_log_no_change BEFORE UPDATE OR DELETE ON admin_audit_log
      FOR EACH ROW EXECUTE FUNCTION admin_audit_log_append_only();
  `);

  await knex.schema.createTable('reports', (t) => {
    t.bigIncrements('id').primary();
    t.text('reporter').notNullable();
    // 'event' (a message) or 'user'.
    t.text('kind').notNullable();
    t.text('room_id');
    t.text('event_id');
    t.text('target_user_id').notNullable();
    t.text('reason').notNullable();
    // What the reported message said when it was reported (it may be redacted later).
    t.jsonb('event_snapshot');
    t.bigInteger('created_ts').notNullable();
    t.text('state').notNullable().defaultTo('open'); // open | resolved
    t.text('assignee');
    t.bigInteger('assigned_ts');
    t.text('resolved_by');
    t.bigInteger('resolved_ts');
    t.text('resolution');
    t.index(['state', 'created_ts']);
    t.index(['target_user_id']);
  });

  await knex.schema.createTable('blocklist_subscriptions', (t) => {
    t.bigIncrements('id').primary();
    t.text('url').notNullable().unique();
    t.text('public_key').notNullable();
    t.text('name');
    t.bigInteger('created_ts').notNullable();
    t.text('created_by').notNullable();
    t.bigInteger('last_fetch_ts');
    t.bigInteger('last_issued_ts');
    t.text('last_error');
    t.integer('entries').notNullable().defaultTo(0);
  });

  await knex.schema.createTable('domain_policies', (t) => {
    t.bigIncrements('id').primary();
    t.text('domain').notNullable();
    t.text('kind').notNullable(); // block | allow
    t.text('reason');
    // Everything added in one step (one entry, one import, one subscription) shares a batch,
    // so that step is undone in one step.
    t.text('batch').notNullable();
    t.bigInteger('subscription_id').references('id').inTable('blocklist_subscriptions').onDelete('CASCADE');
    t.bigInteger('created_ts').notNullable();
    t.text('created_by').notNullable();
    t.unique(['domain', 'kind', 'batch']);
    t.index(['batch']);
  });

  await knex.schema.createTable('blocked_rooms', (t) => {
    t.text('room_id').primary();
    t.text('reason');
    t.text('blocked_by').notNullable();
    t.bigInteger('created_ts').notNullable();
  });

  await knex.schema.alterTable('media', (t) => {
    t.bigInteger('quarantined_ts');
    t.text('quarantined_by');
  });

  await knex.schema.createTable('admin_jobs', (t) => {
    t.text('id').primary();
    t.text('kind').notNullable();
    t.text('target');
    t.text('state').notNullable(); // running | done | failed | interrupted
    t.integer('done').notNullable().defaultTo(0);
    t.integer('total').notNullable().defaultTo(0);
    t.text('error');
    t.jsonb('result');
    t.text('created_by').notNullable();
    t.bigInteger('created_ts').notNullable();
    t.bigInteger('finished_ts');
    t.index(['created_ts']);
  });

  await knex.schema.createTable('stats_samples', (t) => {
    t.bigInteger('ts').primary();
    t.integer('users_total').notNullable();
    // Distinct users seen since the start of the sample's UTC day.
    t.integer('active_today').notNullable();
    // Messages (room.message stream frames) since the previous sample, and where it stopped.
    t.integer('messages').notNullable();
    t.bigInteger('stream_position').notNullable();
    t.integer('destinations_up').notNullable();
    t.integer('destinations_backing_off').notNullable();
    t.integer('destinations_down').notNullable();
    t.integer('queue_depth').notNullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('stats_samples');
  await knex.schema.dropTable('admin_jobs');
  await knex.schema.alterTable('media', (t) => {
    t.dropColumn('quarantined_ts');
    t.dropColumn('quarantined_by');
  });
  await knex.schema.dropTable('blocked_rooms');
  await knex.schema.dropTable('domain_policies');
  await knex.schema.dropTable('blocklist_subscriptions');
  await knex.schema.dropTable('reports');
  await knex.schema.dropTable('admin_audit_log');
  await knex.raw('DROP FUNCTION IF EXISTS admin_audit_log_append_only()');
}

import type { Knex } from 'knex';

// Store-and-forward on a relay (docs/protocol.md): transactions other servers signed for a
// destination they cannot reach, held until delivered or expired. The body is the origin's signed
// request, unchanged; for an encrypted room it is ciphertext the relay cannot read.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('relay_held', (t) => {
    t.bigIncrements('id').primary();
    t.string('origin', 255).notNullable();
    t.string('destination', 255).notNullable();
    t.string('txn_id', 255).notNullable();
    // The RelayRequestEnvelope as received (its latest, freshest signed copy).
    t.jsonb('envelope').notNullable();
    t.string('body_sha256', 64).notNullable();
    t.integer('bytes').notNullable();
    t.bigInteger('received_ts').notNullable();
    t.bigInteger('expires_ts').notNullable();
    t.bigInteger('next_try_ts').notNullable();
    t.integer('attempts').notNullable().defaultTo(0);
    t.bigInteger('delivered_ts');
    // The destination's answer (with its signed receipt) once delivered.
    t.jsonb('answer');
    t.text('last_error');
    t.unique(['origin', 'destination', 'txn_id']);
  });
  await knex.raw('create index relay_held_due on relay_held (next_try_ts) where delivered_ts is null');
  await knex.raw('create index relay_held_origin on relay_held (origin) where delivered_ts is null');
  await knex.raw('create index relay_held_expiry on relay_held (expires_ts)');
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('relay_held');
}

import type WebSocket from 'ws';
import { connectStream, type Member, pool, register } from './clients.js';
import { type BenchServer, benchRedis, startFederation } from './server.js';

export interface JoinLargeOptions {
  /** Joined members of the room on the host, its creator included. */
  members: number;
  /** Messages in the room before the join; the last one is the one the joiner waits for. */
  messages: number;
  /** Requests in flight while populating the room. */
  concurrency: number;
  /** How long the joiner may take before the run counts as failed. */
  capS: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const round = (v: number, digits = 0) => Math.round(v * 10 ** digits) / 10 ** digits;

/**
 * bench/README.md join-large: a host with a room of `members` members and `messages` messages;
 * a second server that has never seen the room joins one of its users. `join_ms` runs from
 * the join request until the room's latest message is visible to the joiner (its stream or
 * its server's history, whichever shows it first).
 *
 * The room is populated through the client API (register, join, send), so every event is
 * signed and sequenced by the host as in real use; only Argon2 runs at the cheapest cost the
 * config accepts, to register thousands of users in minutes.
 */
export async function joinLarge(o: JoinLargeOptions): Promise<Record<string, unknown>> {
  if (o.members < 1 || o.messages < 1) throw new TypeError('join-large: members and messages must be at least 1');
  const redis = await benchRedis();
  const [host, joinerServer] = (await startFederation(['h', 'j'], { redis, cheapArgon2: true })) as [BenchServer, BenchServer];
  let socket: WebSocket | null = null;
  try {
    const t = performance.now();
    const creator = await register(host.url, 'creator');
    const { room_id: roomId } = await creator.rooms.create({ visibility: 'public', name: 'join-large' });
    const members: Member[] = [creator];
    await pool(o.members - 1, o.concurrency, async (i) => {
      const m = await register(host.url, `m${i}`);
      await m.rooms.join(roomId);
      members.push(m);
    });
    const populateMembersS = (performance.now() - t) / 1000;

    const t2 = performance.now();
    await pool(o.messages - 1, o.concurrency, async (i) => {
      await members[i % members.length]!.rooms.sendText(roomId, `jl|${i}|`.padEnd(200, '.'));
    });
    const lastBody = 'jl|last|'.padEnd(200, '.');
    const last = await creator.rooms.sendText(roomId, lastBody);
    const populateMessagesS = (performance.now() - t2) / 1000;

    const joiner = await register(joinerServer.url, 'joiner');
    let seenOnStream = 0;
    socket = await connectStream(joinerServer.url, joiner.token, (f) => {
      if (seenOnStream === 0 && f.kind === 'event' && f.data.event.room_id === roomId && f.data.event.content.body === lastBody) {
        seenOnStream = performance.now();
      }
    });
    await sleep(1000);
    const cpu0 = { host: host.usage().cpu_s, joiner: joinerServer.usage().cpu_s };
    host.resetPeak();
    joinerServer.resetPeak();

    const t0 = performance.now();
    let joinError: string | null = null;
    let joinAnswered = 0;
    const joined = joiner.rooms.join(roomId).then(
      () => {
        joinAnswered = performance.now();
      },
      (err: Error) => {
        joinError = err.message;
      },
    );
    let seenInHistory = 0;
    const end = t0 + o.capS * 1000;
    while (seenOnStream === 0 && seenInHistory === 0 && joinError === null && performance.now() < end) {
      if (joinAnswered > 0) {
        try {
          // The joiner's own join comes after the latest message, so look a few events back.
          const page = await joiner.rooms.messages(roomId, { dir: 'b', limit: 10 });
          if (page.chunk.some((e) => e.event_id === last.event_id)) seenInHistory = performance.now();
        } catch {
          // not a member yet on the joiner's server
        }
      }
      if (seenOnStream === 0 && seenInHistory === 0) await sleep(20);
    }
    await Promise.race([joined, sleep(Math.max(0, end - performance.now()))]);
    const seen = seenOnStream > 0 && (seenInHistory === 0 || seenOnStream < seenInHistory) ? seenOnStream : seenInHistory;
    const usage = { host: host.usage(), joiner: joinerServer.usage() };
    return {
      scenario: 'join-large',
      delivery: redis ? 'bullmq (Redis)' : 'in-process outbox poller',
      members: o.members,
      messages: o.messages,
      join_ms: seen > 0 ? round(seen - t0, 1) : null,
      ...(seen > 0 ? { first_seen_via: seen === seenOnStream ? 'stream' : 'messages()' } : {}),
      join_request_ms: joinAnswered > 0 ? round(joinAnswered - t0, 1) : null,
      // A run that never saw the message is a failed run: index.ts exits 1 on `error`.
      ...(joinError !== null ? { error: `join failed: ${joinError}` } : {}),
      ...(seen === 0 && joinError === null ? { error: `the latest message was not visible within ${o.capS} s` } : {}),
      during_join: {
        host: { cpu_s: round(usage.host.cpu_s - cpu0.host, 2), peak_rss_kb: usage.host.peak_rss_kb },
        joiner: { cpu_s: round(usage.joiner.cpu_s - cpu0.joiner, 2), peak_rss_kb: usage.joiner.peak_rss_kb },
      },
      populate: {
        register_and_join_s: round(populateMembersS, 1),
        send_messages_s: round(populateMessagesS, 1),
        concurrency: o.concurrency,
        argon2: 'cheapest the config accepts (8 MiB, 1 pass): bench only',
      },
    };
  } finally {
    socket?.close();
    await Promise.all([host.stop(), joinerServer.stop()]);
  }
}

import { type ParleyClient, ParleyStream } from '@parley/sdk';
import { watch } from 'vue';
import { createPoller } from './poller.js';
import { createStreamSource } from './stream.js';
import type { LiveSink, LiveSource } from './types.js';

// A server without the stream (older, or a proxy that drops WebSockets and /sync) never
// reaches `ready`: after this long the client polls history instead.
const STREAM_GRACE_MS = 15_000;

/**
 * THE switch between the live stream and polling: everything else in the app sees only a
 * LiveSource. The sdk's ParleyStream (WebSocket, else long-poll) is preferred; the REST
 * poller is the fallback when the stream cannot be had at all.
 */
export function createLiveSource(client: ParleyClient, sink: LiveSink): LiveSource {
  let stream: LiveSource;
  try {
    stream = createStreamSource(new ParleyStream({ client, longPoll: 'auto' }), sink);
  } catch {
    return createPoller(sink);
  }
  let current: LiveSource = stream;
  let everLive = false;
  const stopWatch = watch(stream.state, (s) => {
    if (s === 'live') everLive = true;
  });
  const fallback = setTimeout(() => {
    if (everLive || current !== stream) return;
    stream.stop();
    current = createPoller(sink);
    proxy.kind = 'poll';
    stateProxy.value = current.state.value;
    watch(current.state, (s) => {
      stateProxy.value = s;
    });
  }, STREAM_GRACE_MS);

  // The state seen by the app follows whichever source is current.
  const stateProxy = stream.state;
  const proxy: { -readonly [K in keyof LiveSource]: LiveSource[K] } = {
    state: stateProxy,
    kind: 'stream',
    poke: () => current.poke(),
    stop: () => {
      clearTimeout(fallback);
      stopWatch();
      current.stop();
    },
  };
  return proxy;
}

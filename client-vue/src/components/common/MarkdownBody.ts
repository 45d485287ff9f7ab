import { defineComponent, h, type PropType, type VNode } from 'vue';
import { displayName } from '../../lib/ids.js';
import { type Block, type Inline, parseMarkdown } from '../../lib/markdown.js';

// Parsing is cached per body: virtualized rows mount again every time they scroll in.
const cache = new Map<string, Block[]>();
const CACHE_CAP = 500;

function parsed(body: string): Block[] {
  let blocks = cache.get(body);
  if (!blocks) {
    blocks = parseMarkdown(body);
    cache.set(body, blocks);
    if (cache.size > CACHE_CAP) cache.delete(cache.keys().next().value as string);
  }
  return blocks;
}

// Only fixed tag names are ever created, and message text only ever becomes a string
// child (a text node). The one attribute that comes from a message is a link's href,
// which markdown.ts limits to http(s) and mailto.
interface Ctx {
  me: string;
  nameOf: (userId: string) => string;
}

function inline(nodes: Inline[], ctx: Ctx): Array<VNode | string> {
  return nodes.map((n) => {
    switch (n.t) {
      case 'text':
        return n.v;
      case 'mention':
        // A pill with the person's name; the user ID stays available on hover.
        return h(
          'span',
          { class: n.id === ctx.me ? 'mention mention-me' : 'mention', title: n.id, 'data-testid': 'mention' },
          `@${ctx.nameOf(n.id)}`,
        );
      case 'br':
        return h('br');
      case 'code':
        return h('code', n.v);
      case 'link':
        return h('a', { href: n.href, target: '_blank', rel: 'noopener noreferrer nofollow ugc' }, inline(n.c, ctx));
      default:
        return h(n.t, inline(n.c, ctx));
    }
  });
}

function block(b: Block, ctx: Ctx): VNode {
  switch (b.t) {
    case 'p':
      return h('p', inline(b.c, ctx));
    case 'pre':
      return h('pre', [h('code', b.v)]);
    case 'quote':
      return h(
        'blockquote',
        b.c.map((x) => block(x, ctx)),
      );
    default:
      return h(
        b.t,
        b.items.map((item) => h('li', inline(item, ctx))),
      );
  }
}

/** Renders a message body's Markdown subset as vnodes: never HTML, never v-html. */
export default defineComponent({
  name: 'MarkdownBody',
  props: {
    body: { type: String as PropType<string>, required: true },
    /** My user ID: mentions of me are highlighted. */
    me: { type: String as PropType<string>, default: '' },
    /** Display names by user ID, for mention pills. */
    names: { type: Object as PropType<ReadonlyMap<string, string | null>>, default: undefined },
  },
  setup(props) {
    const nameOf = (id: string) => displayName(id, props.names);
    return () =>
      h(
        'div',
        { class: 'md' },
        parsed(props.body).map((b) => block(b, { me: props.me, nameOf })),
      );
  },
});

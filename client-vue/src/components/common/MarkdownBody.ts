import { defineComponent, h, type PropType, type VNode } from 'vue';
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
function inline(nodes: Inline[]): Array<VNode | string> {
  return nodes.map((n) => {
    switch (n.t) {
      case 'text':
        return n.v;
      case 'br':
        return h('br');
      case 'code':
        return h('code', n.v);
      case 'link':
        return h('a', { href: n.href, target: '_blank', rel: 'noopener noreferrer nofollow ugc' }, inline(n.c));
      default:
        return h(n.t, inline(n.c));
    }
  });
}

function block(b: Block): VNode {
  switch (b.t) {
    case 'p':
      return h('p', inline(b.c));
    case 'pre':
      return h('pre', [h('code', b.v)]);
    case 'quote':
      return h('blockquote', b.c.map(block));
    default:
      return h(
        b.t,
        b.items.map((item) => h('li', inline(item))),
      );
  }
}

/** Renders a message body's Markdown subset as vnodes: never HTML, never v-html. */
export default defineComponent({
  name: 'MarkdownBody',
  props: { body: { type: String as PropType<string>, required: true } },
  setup(props) {
    return () => h('div', { class: 'md' }, parsed(props.body).map(block));
  },
});

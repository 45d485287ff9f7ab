import { describe, expect, it } from 'vitest';
import { createApp, h } from 'vue';
import MarkdownBody from '../src/components/common/MarkdownBody.js';
import { parseInline, parseMarkdown, plainPreview, safeHref } from '../src/lib/markdown.js';

// Messages are attacker-controlled. Each of these must come out as text, never as markup.
const HOSTILE = [
  '<script>alert(1)</script>',
  '<img src=x onerror=alert(1)>',
  '<svg/onload=alert(1)>',
  '<iframe src="javascript:alert(1)"></iframe>',
  '<a href="javascript:alert(1)">click</a>',
  '[click](javascript:alert(1))',
  '[click](JaVaScRiPt:alert(1))',
  '[click](  javascript:alert(1))',
  '[click](java\tscript:alert(1))',
  '[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)',
  '[x](vbscript:msgbox(1))',
  '[x](file:///etc/passwd)',
  '[<img src=x onerror=alert(1)>](https://example.org)',
  '[x](https://example.org/"onmouseover="alert(1))',
  'javascript:alert(1)',
  'https://example.org/<script>alert(1)</script>',
  '"><script>alert(1)</script>',
  "'';!--\"<XSS>=&{()}",
  '**<b onclick=alert(1)>bold</b>**',
  '*<i>em</i>*',
  '~~<s>x</s>~~',
  '`<script>alert(1)</script>`',
  '```\n<iframe src=//evil.example></iframe>\n```',
  '> <style>body{display:none}</style>',
  '- <img src=x onerror=alert(1)>\n- <video><source onerror=alert(1)></video>',
  '1. <details open ontoggle=alert(1)>',
  '<!-- <script>alert(1)</script> -->',
  '&lt;script&gt;alert(1)&lt;/script&gt;',
  '<math><mi xlink:href="javascript:alert(1)">x</mi></math>',
  '<form action=javascript:alert(1)><input type=submit></form>',
  '<object data="javascript:alert(1)"></object>',
  '<base href="javascript:/">',
  '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
  '<<script>script>alert(1)<</script>/script>',
  '\\<script\\>alert(1)\\</script\\>',
  '[a](https://ok.example)[b](javascript:alert(1))',
  '<a href="https://ok.example" onclick="alert(1)">ok</a>',
  '{{ constructor.constructor("alert(1)")() }}',
  '\u202e<script>alert(1)</script>',
  `${'*'.repeat(500)}<script>x</script>${'_'.repeat(500)}`,
  `${'> '.repeat(50)}<script>deep</script>`,
];

const ALLOWED_TAGS = new Set(['DIV', 'P', 'BR', 'STRONG', 'EM', 'DEL', 'CODE', 'PRE', 'BLOCKQUOTE', 'UL', 'OL', 'LI', 'A']);
const ALLOWED_ATTRS = new Set(['class', 'href', 'target', 'rel']);

function render(body: string): HTMLElement {
  const el = document.createElement('div');
  const app = createApp({ render: () => h(MarkdownBody, { body }) });
  app.mount(el);
  return el;
}

describe('markdown rendering never produces markup from message text', () => {
  it.each(HOSTILE)('%s', (payload) => {
    const el = render(payload);
    for (const node of el.querySelectorAll('*')) {
      expect(ALLOWED_TAGS.has(node.tagName), `unexpected <${node.tagName}>`).toBe(true);
      for (const attr of node.getAttributeNames()) {
        expect(ALLOWED_ATTRS.has(attr), `unexpected attribute ${attr} on <${node.tagName}>`).toBe(true);
      }
      if (node.tagName === 'A') {
        const href = node.getAttribute('href') ?? '';
        expect(new URL(href).protocol).toMatch(/^(https?|mailto):$/);
        expect(node.getAttribute('rel')).toContain('noopener');
      }
    }
    // Whatever looked like a tag is still there, as text.
    if (payload.includes('<script>') && !payload.startsWith('\\')) expect(el.textContent).toContain('<script>');
    expect(el.innerHTML).not.toMatch(/<(script|img|svg|iframe|style|form|object|math|base|meta|input|details|video|s|b|i)[\s>/]/i);
  });
});

describe('markdown rendering', () => {
  it('renders the subset as elements', () => {
    const el = render('**b** [l](https://e.example) `c`\n> q');
    expect(el.querySelector('strong')?.textContent).toBe('b');
    expect(el.querySelector('a')?.getAttribute('href')).toBe('https://e.example/');
    expect(el.querySelector('a')?.getAttribute('target')).toBe('_blank');
    expect(el.querySelector('code')?.textContent).toBe('c');
    expect(el.querySelector('blockquote')?.textContent).toBe('q');
  });
});

describe('parseMarkdown', () => {
  it('parses the supported subset', () => {
    expect(parseMarkdown('**bold** *em* _em_ ~~del~~ `code`')).toEqual([
      {
        t: 'p',
        c: [
          { t: 'strong', c: [{ t: 'text', v: 'bold' }] },
          { t: 'text', v: ' ' },
          { t: 'em', c: [{ t: 'text', v: 'em' }] },
          { t: 'text', v: ' ' },
          { t: 'em', c: [{ t: 'text', v: 'em' }] },
          { t: 'text', v: ' ' },
          { t: 'del', c: [{ t: 'text', v: 'del' }] },
          { t: 'text', v: ' ' },
          { t: 'code', v: 'code' },
        ],
      },
    ]);
  });

  it('keeps line breaks inside a paragraph and splits paragraphs on blank lines', () => {
    expect(parseMarkdown('a\nb\n\nc')).toEqual([
      { t: 'p', c: [{ t: 'text', v: 'a' }, { t: 'br' }, { t: 'text', v: 'b' }] },
      { t: 'p', c: [{ t: 'text', v: 'c' }] },
    ]);
  });

  it('parses fences, quotes and lists', () => {
    expect(parseMarkdown('```\nx *y*\n```\n> quoted\n- one\n- two\n1. first')).toEqual([
      { t: 'pre', v: 'x *y*' },
      { t: 'quote', c: [{ t: 'p', c: [{ t: 'text', v: 'quoted' }] }] },
      { t: 'ul', items: [[{ t: 'text', v: 'one' }], [{ t: 'text', v: 'two' }]] },
      { t: 'ol', items: [[{ t: 'text', v: 'first' }]] },
    ]);
  });

  it('leaves snake_case, lone asterisks and unclosed markers alone', () => {
    expect(parseInline('snake_case_name')).toEqual([{ t: 'text', v: 'snake_case_name' }]);
    expect(parseInline('2 * 3 * 4')).toEqual([{ t: 'text', v: '2 * 3 * 4' }]);
    expect(parseInline('**open')).toEqual([{ t: 'text', v: '**open' }]);
  });

  it('links bare URLs without trailing punctuation', () => {
    expect(parseInline('see https://example.org/a_(b). ok')).toEqual([
      { t: 'text', v: 'see ' },
      { t: 'link', href: 'https://example.org/a_(b)', c: [{ t: 'text', v: 'https://example.org/a_(b)' }] },
      { t: 'text', v: '. ok' },
    ]);
    expect(parseInline('(https://example.org)')[1]).toEqual({
      t: 'link',
      href: 'https://example.org/',
      c: [{ t: 'text', v: 'https://example.org' }],
    });
  });

  it('honours backslash escapes', () => {
    expect(parseInline('\\*not em\\*')).toEqual([{ t: 'text', v: '*not em*' }]);
  });
});

describe('safeHref', () => {
  it.each([
    ['https://a.example/x', 'https://a.example/x'],
    ['http://a.example', 'http://a.example/'],
    ['mailto:a@b.example', 'mailto:a@b.example'],
    ['javascript:alert(1)', null],
    ['data:text/html,x', null],
    ['//evil.example', null],
    ['/relative', null],
    ['ftp://a.example', null],
  ])('%s → %s', (input, out) => {
    expect(safeHref(input)).toBe(out);
  });
});

describe('plainPreview', () => {
  it('flattens whitespace, replaces code blocks and truncates', () => {
    expect(plainPreview('a\n\n```\ncode\n```\nb')).toBe('a [code] b');
    expect(plainPreview('x'.repeat(200), 10)).toBe(`${'x'.repeat(9)}…`);
  });
  it('reads the Markdown instead of showing it (room-list previews)', () => {
    expect(plainPreview('this is **bold**, _leaning_ and ~~gone~~')).toBe('this is bold, leaning and gone');
    expect(plainPreview('> quoted\n- one\n- two')).toBe('quoted one two');
    expect(plainPreview('see [the site](https://example.org) and `x = 1`')).toBe('see the site and x = 1');
    expect(plainPreview('\\*not emphasis\\*')).toBe('*not emphasis*');
  });
});

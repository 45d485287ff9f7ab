import { filenameFromDisposition } from '@parley/sdk';
import { describe, expect, it } from 'vitest';
import {
  contentDisposition,
  etagMatches,
  isInlineSafe,
  parseRange,
  type RangeDecision,
  sanitizeFilename,
  sniffText,
} from '../src/services/media-policy.js';

const utf8 = (s: string) => new TextEncoder().encode(s);

describe('sniffText', () => {
  const cases: Array<[string, string]> = [
    ['hello world\n', 'text/plain; charset=utf-8'],
    ['', 'text/plain; charset=utf-8'],
    ['<3 you', 'text/plain; charset=utf-8'],
    ['<!DOCTYPE html><title>x</title>', 'text/html'],
    ['\ufeff  \n<HTML>', 'text/html'],
    ['<script>alert(1)</script>', 'text/html'],
    ['<iframe src=x>', 'text/html'],
    ['<a href=x>', 'text/html'],
    ['<!-- comment -->', 'text/html'],
    ['<b>bold', 'text/html'],
    ['<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)">', 'image/svg+xml'],
    ['<?xml version="1.0"?><svg>', 'image/svg+xml'],
    ['<?xml version="1.0"?><feed>', 'application/xml'],
    ['<custom-element>', 'application/xml'],
    ['</p>', 'application/xml'],
  ];
  it.each(cases)('%j → %s', (text, type) => {
    expect(sniffText(utf8(text))).toBe(type);
  });
});

describe('isInlineSafe', () => {
  const cases: Array<[string, boolean]> = [
    ['image/png', true],
    ['IMAGE/JPEG', true],
    ['audio/ogg; codecs=opus', true],
    ['text/plain; charset=utf-8', true],
    ['image/svg+xml', false],
    ['text/html', false],
    ['application/xml', false],
    ['text/javascript', false],
    ['application/pdf', false],
    ['application/octet-stream', false],
    ['', false],
  ];
  it.each(cases)('%s → %s', (type, inline) => {
    expect(isInlineSafe(type)).toBe(inline);
  });
});

describe('sanitizeFilename', () => {
  const cases: Array<[string, string | null]> = [
    ['photo.png', 'photo.png'],
    ['../../etc/passwd', 'passwd'],
    ['C:\\Users\\me\\evil.exe', 'evil.exe'],
    ['a\r\nSet-Cookie: x=1', 'aSet-Cookie: x=1'],
    ['nul\u0000byte', 'nulbyte'],
    ['photo\u202Egnp.exe', 'photognp.exe'],
    ['  spaced  ', 'spaced'],
    ['lone \ud800 surrogate', 'lone \ufffd surrogate'],
    ['..', null],
    ['dir/', null],
    ['\u0001\u0002', null],
    ['', null],
    ['Grüße 🎉 "quoted".txt', 'Grüße 🎉 "quoted".txt'],
  ];
  it.each(cases)('%j → %j', (raw, clean) => {
    expect(sanitizeFilename(raw)).toBe(clean);
  });
});

describe('contentDisposition', () => {
  it('is the bare kind without a filename', () => {
    expect(contentDisposition('attachment', null)).toBe('attachment');
    expect(contentDisposition('inline', null)).toBe('inline');
  });

  const names = ['plain.txt', 'Grüße 🎉.txt', `it's (a) "test"*.txt`, 'back\\slash;semi,comma.txt', '100%.txt', '日本語.pdf'];
  it.each(names)('encodes %j in ASCII and round-trips through the sdk parser', (name) => {
    const header = contentDisposition('attachment', name);
    // RFC 9110 field values: visible ASCII, space and tab only.
    expect(header).toMatch(/^[\x20-\x7e]+$/);
    expect(header.startsWith('attachment; filename="')).toBe(true);
    expect(filenameFromDisposition(header)).toBe(name);
    // The fallback is a clean quoted-string: no quote or backslash inside it.
    const fallback = /filename="([^"]*)"/.exec(header)?.[1] ?? '';
    expect(fallback).not.toMatch(/["\\]/);
  });

  it('percent-encodes the characters RFC 8187 leaves out of attr-char', () => {
    expect(contentDisposition('inline', `a'(b)*`)).toBe(`inline; filename="a'(b)*"; filename*=UTF-8''a%27%28b%29%2A`);
  });
});

describe('parseRange', () => {
  const size = 1000;
  const cases: Array<[string | undefined, RangeDecision]> = [
    [undefined, { kind: 'full' }],
    ['', { kind: 'full' }],
    ['bytes=0-99', { kind: 'partial', start: 0, end: 99 }],
    ['bytes=900-', { kind: 'partial', start: 900, end: 999 }],
    ['bytes=900-5000', { kind: 'partial', start: 900, end: 999 }],
    ['bytes=-100', { kind: 'partial', start: 900, end: 999 }],
    ['bytes=-5000', { kind: 'partial', start: 0, end: 999 }],
    ['bytes=1000-', { kind: 'unsatisfiable' }],
    ['bytes=-0', { kind: 'unsatisfiable' }],
    ['bytes=99999999999999999999-', { kind: 'unsatisfiable' }],
    ['bytes=50-10', { kind: 'full' }],
    ['bytes=0-1,5-6', { kind: 'full' }],
    ['items=0-1', { kind: 'full' }],
    ['bytes=-', { kind: 'full' }],
    ['bytes=abc', { kind: 'full' }],
  ];
  it.each(cases)('%j', (header, decision) => {
    expect(parseRange(header, size)).toEqual(decision);
  });

  it('sends the whole of an empty file', () => {
    expect(parseRange('bytes=0-10', 0)).toEqual({ kind: 'full' });
  });
});

describe('etagMatches', () => {
  const etag = '"abc"';
  const cases: Array<[string | undefined, boolean]> = [
    [undefined, false],
    ['', false],
    ['"abc"', true],
    ['W/"abc"', true],
    ['"x", "abc"', true],
    ['*', true],
    ['"abcd"', false],
    ['abc', false],
  ];
  it.each(cases)('%j', (header, match) => {
    expect(etagMatches(header, etag)).toBe(match);
  });
});

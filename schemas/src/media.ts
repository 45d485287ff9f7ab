import { type Static, Type } from '@sinclair/typebox';
import { SERVER_NAME_PATTERN } from './ids.js';

// Media IDs are server-chosen; ours are 24 random bytes in base64url (32 characters), but
// a remote server's may differ, so only the alphabet and a length cap are fixed.
export const MEDIA_ID_PATTERN = '^[A-Za-z0-9_-]{1,128}$';
export const MediaId = Type.String({ pattern: MEDIA_ID_PATTERN });

// `parley://<server_name>/<media_id>`
export const ContentUri = Type.String({
  maxLength: 512,
  pattern: `^parley://${SERVER_NAME_PATTERN.slice(1, -1)}/[A-Za-z0-9_-]{1,128}$`,
});

const mediaIdRe = new RegExp(MEDIA_ID_PATTERN);
const contentUriRe = new RegExp(`^parley://(${SERVER_NAME_PATTERN.slice(1, -1)})/([A-Za-z0-9_-]{1,128})$`);

/** Splits `parley://server/mediaId`; returns null for anything else. */
export function parseContentUri(uri: unknown): { serverName: string; mediaId: string } | null {
  if (typeof uri !== 'string' || uri.length > 512) return null;
  const match = contentUriRe.exec(uri);
  if (!match) return null;
  return { serverName: match[1] as string, mediaId: match[2] as string };
}

export function isMediaId(id: unknown): id is string {
  return typeof id === 'string' && mediaIdRe.test(id);
}

// POST /api/v1/media
export const MediaUploadResponse = Type.Object({
  content_uri: ContentUri,
  media_id: MediaId,
  /** What the server sniffed from the bytes; the client's Content-Type is never trusted. */
  content_type: Type.String(),
  size: Type.Integer({ minimum: 0 }),
});
export type MediaUploadResponse = Static<typeof MediaUploadResponse>;

// GET /api/v1/media/:serverName/:mediaId/info
export const MediaInfo = Type.Object({
  content_uri: ContentUri,
  media_id: MediaId,
  content_type: Type.String(),
  size: Type.Integer({ minimum: 0 }),
  filename: Type.Union([Type.String(), Type.Null()]),
  /** Hex SHA-256 of the bytes, also sent as the download's ETag. */
  sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }),
  created_ts: Type.Integer(),
  /** Whether downloads are served inline with `content_type`, or as an octet-stream attachment. */
  inline: Type.Boolean(),
});
export type MediaInfo = Static<typeof MediaInfo>;

import type { Profile, ProfileUpdateRequest } from '@parley/schemas';
import { forbidden, notFound } from '../errors.js';
import type { UserRepository, UserRow } from '../repositories/users.js';
import type { AuthContext } from './sessions.js';

function toWire(row: UserRow): Profile {
  return { user_id: row.user_id, displayname: row.displayname, avatar_url: row.avatar_url };
}

export class ProfileService {
  constructor(
    private readonly users: UserRepository,
    private readonly announce: (profile: Profile) => Promise<void>,
  ) {}

  async get(userId: string): Promise<Profile> {
    const row = await this.users.findById(userId);
    if (!row || row.deactivated) throw notFound(`no profile for ${userId}`);
    return toWire(row);
  }

  async update(auth: AuthContext, userId: string, req: ProfileUpdateRequest): Promise<Profile> {
    if (auth.userId !== userId) throw forbidden('you can only change your own profile');
    const fields: { displayname?: string | null; avatar_url?: string | null } = {};
    if (req.displayname !== undefined) fields.displayname = req.displayname;
    if (req.avatar_url !== undefined) fields.avatar_url = req.avatar_url;
    const row = await this.users.updateProfile(userId, fields);
    if (!row) throw notFound(`no profile for ${userId}`);
    const profile = toWire(row);
    await this.announce(profile);
    return profile;
  }
}

import { hash, verify } from '@node-rs/argon2';

export interface Argon2Params {
  memory_kib: number;
  iterations: number;
  parallelism: number;
}

/** Argon2id password hashing (RFC 9106); the PHC string records its own parameters. */
export class PasswordHasher {
  // A real hash of a random password, verified when the user does not exist so that a
  // login for an unknown name costs the same time as a wrong password.
  private dummy: Promise<string> | undefined;

  constructor(private readonly params: Argon2Params) {}

  hash(password: string): Promise<string> {
    // @node-rs/argon2 defaults to Argon2id (its const enum can't be imported under
    // verbatimModuleSyntax); the test suite checks the PHC string says argon2id.
    return hash(password, {
      memoryCost: this.params.memory_kib,
      timeCost: this.params.iterations,
      parallelism: this.params.parallelism,
    });
  }

  async verify(phc: string | null, password: string): Promise<boolean> {
    if (!phc) {
      this.dummy ??= this.hash(crypto.randomUUID());
      await verify(await this.dummy, password).catch(() => false);
      return false;
    }
    try {
      return await verify(phc, password);
    } catch {
      return false;
    }
  }
}

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { createContactLink, fetchContactRequests, MailboxClient, type OwnedContactLink, sendContactRequest } from '@parley/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from './support/server.js';

// What a mailbox server keeps (issue 14, docs/protocol.md): after contact requests and other
// deposits from users of another server, a full pg_dump of the mailbox server's database holds
// none of their user IDs, device IDs or display names — only queue IDs, keys and sealed blocks.
const PASSWORD = 'correct horse battery';
const run = promisify(execFile);

let home: TestServer;
let mailboxServer: TestServer;

beforeAll(async () => {
  [home, mailboxServer] = await Promise.all([startTestServer(), startTestServer({ server_name: 'mail.test' })]);
});
afterAll(async () => {
  await Promise.all([home?.close(), mailboxServer?.close()]);
});

describe('a mailbox server database dump', () => {
  it('contains no user ID, device ID or display name of the people who used it', async () => {
    const people = ['zephyrine', 'quillon', 'marguerite'];
    const secrets: string[] = [];
    for (const name of people) {
      const client = home.client();
      const session = await client.register({ username: name, password: PASSWORD });
      const displayname = `${name[0]?.toUpperCase()}${name.slice(1)} Vantablack`;
      await client.updateProfile(session.user_id, { displayname });
      secrets.push(session.user_id, session.device_id, displayname, name);
    }
    const [owner, ...senders] = people.map((p) => `@${p}:hs1.test`);
    const mailbox = new MailboxClient();
    const link: OwnedContactLink = await createContactLink(mailbox, mailboxServer.url, `${owner}'s link`);
    for (const [i, userId] of senders.entries()) {
      await sendContactRequest(mailbox, link.link, {
        userId: userId as string,
        note: `hello from ${people[i + 1]}, device ${secrets[(i + 1) * 4 + 1]}`,
        displayName: secrets[(i + 1) * 4 + 2] as string,
      });
    }
    // Another deposit, like a to-device ciphertext, in a queue of its own.
    const queue = await mailbox.createQueue(mailboxServer.url);
    await mailbox.send(mailboxServer.url, queue.sendId, crypto.getRandomValues(new Uint8Array(700)));
    // The owner reads them: they did arrive.
    const requests = await fetchContactRequests(mailbox, link);
    expect(requests.map((r) => r.userId).sort()).toEqual([...senders].sort());
    expect(requests.map((r) => r.displayName).sort()).toEqual(['Marguerite Vantablack', 'Quillon Vantablack']);

    const { stdout } = await run('pg_dump', ['--no-owner', '--data-only', '--inserts', mailboxServer.database.url], {
      maxBuffer: 64 * 1024 * 1024,
    });
    // The dump is real and holds the mailbox: the queue IDs are in it (so a grep can find things).
    expect(stdout).toContain('mailbox_queues');
    expect(stdout).toContain(link.queue.sendId);
    expect(stdout).toContain(queue.receiveId);
    const lower = stdout.toLowerCase();
    for (const secret of secrets) expect(lower, `the dump names ${secret}`).not.toContain(secret.toLowerCase());
    expect(lower).not.toContain('vantablack');
    expect(lower).not.toContain(`${owner}'s link`.toLowerCase());
    // In hex (bytea) too: the blocks are sealed, not just encoded.
    for (const secret of secrets) expect(lower).not.toContain(Buffer.from(secret).toString('hex'));
  });
});

// A small part of the seed flow through the generated TypeScript SDK, against a running server:
//
//   node flow.js URL PUBLIC_KEY SECRET_KEY
//
// 1. registerContact by phone with the public key (a code is "sent": test mode, the outbox)
// 2. listOutbox with the secret key: read the code
// 3. validateOtp with the public key: signed in, the contact's id
// 4. getContact on the Back-Office API with the secret key: the registered name
//
// The test copies this file next to the generated client (./client), compiles both with tsc
// (strict) and runs the result; each step prints one line, and the last "done: ...". The outbox
// page and the contact are read through their generated types, so a change to their schemas in
// /openapi.json that breaks this use fails the compile.
import { client } from './client/client.gen';
import { getContact, listOutbox, registerContact, validateOtp } from './client';

const OUTBOX_WAIT_MS = 5000;

class Failed extends Error {}

// Answers without a documented schema (register, validate: their shape depends on the identity)
// are `unknown` in the SDK and narrowed here, field by field; the others are typed.
function field(value: unknown, name: string): unknown {
  if (typeof value !== 'object' || value === null || !(name in value)) {
    throw new Failed(`no ${name} in ${JSON.stringify(value)}`);
  }
  return (value as Record<string, unknown>)[name];
}

function text(value: unknown, name: string): string {
  const found = field(value, name);
  if (typeof found !== 'string') throw new Failed(`${name} is not a string: ${JSON.stringify(value)}`);
  return found;
}

// The SDK's answer: `data` when the status is the expected one, else fail with the error body.
function expect<T>(step: string, status: number, answer: { data?: T; error?: unknown; response: Response }): T {
  if (answer.response.status !== status || answer.data === undefined) {
    throw new Failed(`${step}: expected ${status}, got ${answer.response.status} ${JSON.stringify(answer.error)}`);
  }
  return answer.data;
}

async function readCode(secretKey: string, phone: string): Promise<string> {
  const deadline = Date.now() + OUTBOX_WAIT_MS;
  for (;;) {
    const page = expect('listOutbox', 200, await listOutbox({
      query: { recipient: phone, purpose: 'OTP', size: 1 },
      headers: { api_key: secretKey },
    }));
    const message = page.content[0];
    if (message !== undefined) {
      const code = /\b(\d{6})\b/.exec(message.body)?.[1];
      if (code === undefined) throw new Failed(`no 6-digit code in ${JSON.stringify(message)}`);
      return code;
    }
    if (Date.now() > deadline) throw new Failed(`no code for ${phone} after ${OUTBOX_WAIT_MS} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function main(url: string, publicKey: string, secretKey: string): Promise<void> {
  client.setConfig({ baseUrl: url });
  const number = '99' + String(Math.floor(Math.random() * 1e6)).padStart(6, '0');
  const phone = `+357${number}`;

  const registered = expect('registerContact', 201, await registerContact({
    body: {
      first_name: 'Ahmed',
      last_name: 'Samir',
      identity: { provider: 'PHONE', phone_number: number, country_code: 'CYP' },
      service_acceptance: true,
    },
    headers: { api_key: publicKey },
  }));
  console.log(`1. registerContact ${phone}: 201, code sent to ${text(registered, 'obfuscated_value')}`);

  const code = await readCode(secretKey, phone);
  console.log(`2. listOutbox: read code ${code}`);

  const grant = expect('validateOtp', 200, await validateOtp({
    body: { auth_otp: text(registered, 'auth_otp'), code },
    headers: { api_key: publicKey },
  }));
  const contactId = text(field(grant, 'contact'), 'id');
  console.log(`3. validateOtp: signed in as contact ${contactId}`);

  const contact = expect('getContact', 200, await getContact({
    path: { ref: contactId },
    headers: { api_key: secretKey },
  }));
  console.log(`4. getContact with the secret key: ${contact.first_name} ${contact.last_name}`);
  console.log('done: every step answered through the generated TypeScript client.');
}

const [url, publicKey, secretKey] = process.argv.slice(2);
if (!url || !publicKey || !secretKey) {
  console.error('usage: node flow.js URL PUBLIC_KEY SECRET_KEY');
  process.exit(2);
}
main(url, publicKey, secretKey).catch((error: unknown) => {
  console.error(error instanceof Failed ? `FAILED: ${error.message}` : error);
  process.exit(1);
});

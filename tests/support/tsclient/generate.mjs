// Generate crm's TypeScript client: node generate.mjs OPENAPI_JSON OUTPUT_DIR
//
// The standard @hey-api/openapi-ts output: a typed SDK with one function per operationId
// (sdk.gen.ts), a type per schema and per operation's data, errors and responses (types.gen.ts),
// and its fetch client bundled into the output, so the result needs no package at run time.
// The input is validated strictly: a duplicate operationId stops generation instead of being
// renamed `...2`. Exit 1 with the error when generation fails.
//
// package.json pins 0.95.0, the last release that runs on Node.js 20 (later ones need 22).
import { createClient } from '@hey-api/openapi-ts';

const [input, output] = process.argv.slice(2);
if (!input || !output) {
  console.error('usage: node generate.mjs OPENAPI_JSON OUTPUT_DIR');
  process.exit(2);
}
try {
  await createClient({
    input,
    output,
    plugins: ['@hey-api/client-fetch', '@hey-api/typescript', '@hey-api/sdk'],
    parser: { validate_EXPERIMENTAL: 'strict' },
    logs: { file: false },
  });
} catch (error) {
  console.error(error);
  process.exit(1);
}

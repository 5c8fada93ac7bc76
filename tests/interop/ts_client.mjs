#!/usr/bin/env node
// Interop probe: drive an MCP endpoint with the official TypeScript clients.
//
//   --sdk legacy  @modelcontextprotocol/sdk 1.32.2 (legacy era only)
//   --sdk v2      @modelcontextprotocol/client 2.4.0 (dual era; versionNegotiation)
//
//   node tests/interop/ts_client.mjs --sdk v2 --url http://127.0.0.1:8080/mcp --mode auto \
//       --header 'Authorization: Bearer t0k' \
//       --expect-tool echo --expect-absent other__echo \
//       --call echo --args '{"text":"hi"}' --expect-text hi
//   node tests/interop/ts_client.mjs --sdk legacy --transport sse --url http://127.0.0.1:8080/sse \
//       --everything-fidelity
//
// Same CLI shape as py_client.py. Tool names match exactly or by suffix (the gateway exposes
// `<server>__<tool>`); --expect-absent names match exactly (give the exposed name, e.g.
// `beta__echo`). Success: one JSON line on stdout, exit 0. Failure: `ts_client: FAIL: ...` on
// stderr, exit 1 (2 for usage errors).
//
// Module resolution: ESM `import` ignores NODE_PATH, so the SDKs are loaded with
// createRequire() from a node_modules folder: --modules DIR, else the first NODE_PATH entry,
// else $SWITCHBOARD_NODE_MODULES (all set up by scripts/install-peers.sh). Works on Node 20+.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { parseArgs } from 'node:util';

const FIDELITY_ROOT_URI = 'file:///tmp/switchboard-fidelity-root';
const SAMPLING_REPLY = 'switchboard-sampled-reply';

class ProbeError extends Error {}
class UsageError extends Error {}

// ---------------------------------------------------------------------------------------
// CLI
// ---------------------------------------------------------------------------------------

function parseCli(argv) {
  const { values } = parseArgs({
    args: argv,
    options: {
      sdk: { type: 'string', default: 'v2' },
      url: { type: 'string' },
      mode: { type: 'string' },
      transport: { type: 'string', default: 'streamable' },
      header: { type: 'string', multiple: true, default: [] },
      'expect-tool': { type: 'string', multiple: true, default: [] },
      'expect-absent': { type: 'string', multiple: true, default: [] },
      call: { type: 'string' },
      args: { type: 'string', default: '{}' },
      'expect-text': { type: 'string' },
      'everything-fidelity': { type: 'boolean', default: false },
      timeout: { type: 'string', default: '30' },
      modules: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(
      'usage: ts_client.mjs --sdk legacy|v2 --url URL [--mode legacy|auto|2026-07-28]\n' +
        '       [--transport streamable|sse] [--header "Name: value"]... [--expect-tool NAME]...\n' +
        '       [--expect-absent EXACT_NAME]...\n' +
        '       [--call NAME --args JSON --expect-text SUBSTRING] [--everything-fidelity]\n' +
        '       [--timeout SECONDS] [--modules NODE_MODULES_DIR]\n',
    );
    process.exit(0);
  }
  if (!values.url) throw new UsageError('--url is required');
  if (!['legacy', 'v2'].includes(values.sdk)) throw new UsageError(`--sdk must be legacy or v2, got ${values.sdk}`);
  if (!['streamable', 'sse'].includes(values.transport)) throw new UsageError('--transport must be streamable or sse');
  values.mode ??= values.sdk === 'legacy' ? 'legacy' : 'auto';
  if (!['legacy', 'auto', '2026-07-28'].includes(values.mode)) throw new UsageError(`bad --mode ${values.mode}`);
  if (values.sdk === 'legacy' && values.mode !== 'legacy') {
    throw new UsageError('@modelcontextprotocol/sdk 1.32.2 is legacy-era only: use --mode legacy or --sdk v2');
  }
  if (
    !values.call &&
    values['expect-tool'].length === 0 &&
    values['expect-absent'].length === 0 &&
    !values['everything-fidelity']
  ) {
    throw new UsageError('nothing to check: give --expect-tool, --expect-absent, --call and/or --everything-fidelity');
  }
  const headers = {};
  for (const h of values.header) {
    const i = h.indexOf(':');
    if (i <= 0) throw new UsageError(`bad --header ${JSON.stringify(h)} (expected 'Name: value')`);
    headers[h.slice(0, i).trim()] = h.slice(i + 1).trim();
  }
  let args;
  try {
    args = JSON.parse(values.args);
  } catch (e) {
    throw new UsageError(`--args is not JSON: ${e.message}`);
  }
  const timeoutMs = Math.round(Number(values.timeout) * 1000);
  if (!(timeoutMs > 0)) throw new UsageError('--timeout must be a positive number of seconds');
  return { ...values, headers, args, timeoutMs };
}

function modulesDir(opt) {
  const dir = opt || (process.env.NODE_PATH || '').split(path.delimiter).find(Boolean) || process.env.SWITCHBOARD_NODE_MODULES;
  if (!dir) throw new UsageError('cannot find the SDKs: pass --modules DIR or set NODE_PATH / SWITCHBOARD_NODE_MODULES');
  return path.resolve(dir);
}

// ---------------------------------------------------------------------------------------
// SDK adapters: both expose the same small surface to the probe below.
// ---------------------------------------------------------------------------------------

// The packages' exports maps hide package.json from require(); read it by path.
function pkgVersion(dir, name) {
  return JSON.parse(readFileSync(path.join(dir, name, 'package.json'), 'utf8')).version;
}

function loadSdk(kind, dir) {
  // createRequire needs a file path inside the folder; the file itself need not exist.
  const req = createRequire(path.join(dir, 'noop.js'));
  if (kind === 'legacy') {
    const { Client } = req('@modelcontextprotocol/sdk/client/index.js');
    const { StreamableHTTPClientTransport } = req('@modelcontextprotocol/sdk/client/streamableHttp.js');
    const { SSEClientTransport } = req('@modelcontextprotocol/sdk/client/sse.js');
    const types = req('@modelcontextprotocol/sdk/types.js');
    const version = pkgVersion(dir, '@modelcontextprotocol/sdk');
    return {
      label: `ts-sdk-${version}`,
      Client,
      StreamableHTTPClientTransport,
      SSEClientTransport,
      clientOptions: () => ({}),
      // v1 registers handlers by zod request schema; callTool(params, resultSchema, options).
      onRequest: (client, method, fn) => {
        const schema = {
          'sampling/createMessage': types.CreateMessageRequestSchema,
          'elicitation/create': types.ElicitRequestSchema,
          'roots/list': types.ListRootsRequestSchema,
        }[method];
        client.setRequestHandler(schema, fn);
      },
      callTool: (client, params, options) => client.callTool(params, undefined, options),
    };
  }
  const sdk = req('@modelcontextprotocol/client');
  const version = pkgVersion(dir, '@modelcontextprotocol/client');
  return {
    label: `ts-client-${version}`,
    Client: sdk.Client,
    StreamableHTTPClientTransport: sdk.StreamableHTTPClientTransport,
    SSEClientTransport: sdk.SSEClientTransport,
    // versionNegotiation.mode: 'legacy' (the default) | 'auto' | { pin: '<version>' }.
    clientOptions: (mode) => ({
      versionNegotiation: { mode: mode === 'legacy' || mode === 'auto' ? mode : { pin: mode } },
    }),
    // v2 registers handlers by method name; callTool(params, options).
    onRequest: (client, method, fn) => client.setRequestHandler(method, fn),
    callTool: (client, params, options) => client.callTool(params, options),
  };
}

// ---------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------

function findTool(names, wanted) {
  if (names.includes(wanted)) return wanted;
  for (const suffix of [`__${wanted}`, wanted]) {
    const hits = names.filter((n) => n.endsWith(suffix));
    if (hits.length === 1) return hits[0];
    if (hits.length > 1) throw new ProbeError(`tool ${JSON.stringify(wanted)} is ambiguous: ${hits.join(', ')}`);
  }
  return undefined;
}

function sampleValue(prop) {
  if ('default' in prop) return prop.default;
  if (prop.enum?.length) return prop.enum[0];
  if (prop.oneOf?.length) return prop.oneOf[0].const;
  switch (prop.type) {
    case 'boolean':
      return true;
    case 'integer':
    case 'number':
      return prop.minimum ?? 1;
    case 'array': {
      const items = prop.items ?? {};
      return (items.enum ?? (items.anyOf ?? []).map((o) => o.const)).slice(0, 1);
    }
    default:
      return { email: 'test@example.com', uri: 'https://example.com', date: '2000-01-01' }[prop.format] ?? 'switchboard';
  }
}

async function listAllTools(sdkClient) {
  const names = [];
  let cursor;
  for (let page = 0; page < 100; page++) {
    const res = await sdkClient.listTools(cursor ? { cursor } : undefined);
    names.push(...res.tools.map((t) => t.name));
    cursor = res.nextCursor;
    if (!cursor) return names;
  }
  throw new ProbeError('tools/list pagination did not end after 100 pages');
}

// ---------------------------------------------------------------------------------------
// the probe
// ---------------------------------------------------------------------------------------

async function run(opts) {
  const started = Date.now();
  const sdk = loadSdk(opts.sdk, modulesDir(opts.modules));
  const fidelity = opts['everything-fidelity'];
  const counters = { sampling: 0, elicitation: 0, roots: 0 };

  const capabilities = fidelity ? { sampling: {}, elicitation: {}, roots: { listChanged: true } } : {};
  const client = new sdk.Client(
    { name: 'switchboard-ts-probe', version: '1.0.0' },
    { capabilities, ...sdk.clientOptions(opts.mode) },
  );

  if (fidelity) {
    // Declaring these capabilities is what makes server-everything register its
    // sampling / elicitation / roots tools.
    sdk.onRequest(client, 'sampling/createMessage', async () => {
      counters.sampling++;
      return {
        role: 'assistant',
        content: { type: 'text', text: SAMPLING_REPLY },
        model: 'switchboard-test-model',
        stopReason: 'endTurn',
      };
    });
    sdk.onRequest(client, 'elicitation/create', async (request) => {
      counters.elicitation++;
      const props = request.params?.requestedSchema?.properties ?? {};
      const content = Object.fromEntries(Object.entries(props).map(([k, p]) => [k, sampleValue(p)]));
      return { action: 'accept', content };
    });
    sdk.onRequest(client, 'roots/list', async () => {
      counters.roots++;
      return { roots: [{ uri: FIDELITY_ROOT_URI, name: 'switchboard-fidelity' }] };
    });
  }

  const requestInit = { headers: opts.headers };
  const url = new URL(opts.url);
  const transport =
    opts.transport === 'sse'
      ? new sdk.SSEClientTransport(url, { requestInit })
      : new sdk.StreamableHTTPClientTransport(url, { requestInit });

  const reqOpts = { timeout: opts.timeoutMs };
  await client.connect(transport, reqOpts);
  try {
    const callExpecting = async (name, args, expect, extra = {}) => {
      const result = await sdk.callTool(client, { name, arguments: args }, { ...reqOpts, ...extra });
      const joined = (result.content ?? []).filter((c) => c.type === 'text').map((c) => c.text).join('\n');
      if (result.isError) throw new ProbeError(`tool ${JSON.stringify(name)} returned isError: ${joined.slice(0, 500)}`);
      if (expect !== undefined && !joined.includes(expect)) {
        throw new ProbeError(
          `tool ${JSON.stringify(name)}: no text content contains ${JSON.stringify(expect)}; got ${JSON.stringify(joined.slice(0, 500))}`,
        );
      }
      return joined;
    };

    const names = await listAllTools(client);
    const summary = {
      ok: true,
      client: sdk.label,
      mode: opts.mode,
      transport: opts.transport,
      // v1's Client has no getter; its Streamable HTTP transport records the version.
      protocolVersion: client.getNegotiatedProtocolVersion?.() ?? transport.protocolVersion ?? null,
      era: client.getProtocolEra?.() ?? 'legacy',
      server: client.getServerVersion()?.name ?? null,
      tools: names.length,
    };

    for (const wanted of opts['expect-tool']) {
      if (!findTool(names, wanted)) throw new ProbeError(`expected tool ${JSON.stringify(wanted)} not listed; tools: ${names.join(', ')}`);
    }
    for (const unwanted of opts['expect-absent']) {
      if (names.includes(unwanted)) {
        throw new ProbeError(`tool ${JSON.stringify(unwanted)} is listed but must not be; tools: ${names.join(', ')}`);
      }
    }

    if (opts.call) {
      const name = findTool(names, opts.call);
      if (!name) throw new ProbeError(`tool to call ${JSON.stringify(opts.call)} not listed; tools: ${names.join(', ')}`);
      const text = await callExpecting(name, opts.args, opts['expect-text']);
      summary.called = name;
      summary.text = text.slice(0, 200);
    }

    if (fidelity) {
      const need = (suffix) => {
        const found = findTool(names, suffix);
        if (!found) {
          throw new ProbeError(
            `no tool ending in ${JSON.stringify(suffix)} (server-everything registers it only when the client declares the capability); tools: ${names.join(', ')}`,
          );
        }
        return found;
      };
      const out = {};

      out.sampling = need('trigger-sampling-request');
      await callExpecting(out.sampling, { prompt: 'say hi', maxTokens: 20 }, SAMPLING_REPLY);
      if (counters.sampling < 1) throw new ProbeError('sampling handler was never invoked');

      out.elicitation = need('trigger-elicitation-request');
      await callExpecting(out.elicitation, {}, 'accept');
      if (counters.elicitation < 1) throw new ProbeError('elicitation handler was never invoked');

      out.roots = need('get-roots-list');
      await callExpecting(out.roots, {}, FIDELITY_ROOT_URI);

      const tool = need('trigger-long-running-operation');
      const progress = [];
      await callExpecting(tool, { duration: 1, steps: 3 }, 'completed', { onprogress: (p) => progress.push(p) });
      if (progress.length === 0) throw new ProbeError(`${tool}: no progress notification received`);
      out.progress = { tool, notifications: progress.length };
      summary.fidelity = out;
    }

    summary.elapsedMs = Date.now() - started;
    return summary;
  } finally {
    // Best effort: end a legacy Streamable HTTP session (DELETE), then close.
    try {
      if (transport.sessionId && typeof transport.terminateSession === 'function') await transport.terminateSession();
    } catch {
      /* the server may not allow termination */
    }
    await client.close().catch(() => {});
  }
}

async function main() {
  let opts;
  try {
    opts = parseCli(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`ts_client: ${e.message}\n`);
    return 2;
  }
  // One deadline for the whole probe, so a hung peer fails the probe instead of the test.
  const budget = opts.timeoutMs * 4;
  let timer;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new ProbeError(`probe did not finish within ${budget / 1000}s`)), budget);
  });
  try {
    const summary = await Promise.race([run(opts), deadline]);
    process.stdout.write(`${JSON.stringify(summary)}\n`);
    return 0;
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`ts_client: ${e.message}\n`);
      return 2;
    }
    const detail = e instanceof ProbeError ? e.message : `${e?.name ?? 'Error'}: ${e?.message ?? e}`;
    process.stderr.write(`ts_client: FAIL: ${detail}\n`);
    return 1;
  } finally {
    clearTimeout(timer);
  }
}

// Exit explicitly: open sockets / SSE streams must not keep the probe alive.
main().then((code) => process.exit(code));

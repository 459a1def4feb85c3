'use strict';
// What the ethers and viem scripts share: their arguments, the toolchain's modules (from
// .tools/node_modules, installed by `npm ci`), lazily built fixtures, and the runner that
// prints one JSON line {name, ok, detail, ms} per operation. An operation that throws or
// outlives its timeout is reported as failed; the next one runs anyway.

const fs = require('node:fs');
const path = require('node:path');
const { createRequire } = require('node:module');

const REPO = path.resolve(__dirname, '..', '..');
const tools = createRequire(path.join(REPO, '.tools', 'package.json'));

class OpFailed extends Error {}

function check(condition, message) {
  if (!condition) throw new OpFailed(message);
}

function parseArgs(argv) {
  const args = { timeoutMs: 20000, eventMs: 6000, only: null };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    if (flag === '--rpc') args.rpc = value;
    else if (flag === '--ws') args.ws = value;
    else if (flag === '--key') args.key = value;
    else if (flag === '--artifact') args.artifact = JSON.parse(fs.readFileSync(value, 'utf8'));
    else if (flag === '--chain-id') args.chainId = Number(value);
    else if (flag === '--timeout-ms') args.timeoutMs = Number(value);
    else if (flag === '--event-ms') args.eventMs = Number(value);
    else if (flag === '--only') args.only = new Set(value.split(','));
    else throw new Error(`unknown flag ${flag}`);
  }
  for (const required of ['rpc', 'ws', 'key', 'artifact', 'chainId']) {
    if (args[required] === undefined) throw new Error(`--${required} is required`);
  }
  return args;
}

// The clearest message a library error carries: ethers keeps the node's answer in
// info.error, viem in details; both wrap causes.
function describe(error) {
  const parts = [];
  const add = (text) => {
    if (text && !parts.some((p) => p.includes(String(text)))) parts.push(String(text));
  };
  let e = error;
  for (let depth = 0; e && depth < 4; depth += 1, e = e.cause) {
    add(e.shortMessage || (typeof e === 'object' ? e.message : e));
    add(e.details);
    add(e.info && e.info.error && (e.info.error.message || JSON.stringify(e.info.error)));
    add(e.error && e.error.message);
  }
  return parts.join(' | ').replace(/\s+/g, ' ').slice(0, 500);
}

// Fixtures built on first use and shared by the operations that need them; a failed
// fixture fails every operation that needs it, with its reason.
class Fixtures {
  constructor(builders) {
    this.builders = builders;
    this.made = new Map();
  }

  need(name) {
    if (!this.made.has(name)) {
      const promise = Promise.resolve().then(() => this.builders[name]());
      promise.catch(() => {});
      this.made.set(name, promise);
    }
    return this.made.get(name).catch((error) => {
      throw new OpFailed(`fixture ${name} failed: ${describe(error)}`);
    });
  }
}

function withTimeout(promise, ms) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new OpFailed(`timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// Waits for an event from a subscription or a filter. `register(resolve, reject)` sets the
// listener up and returns its teardown; `trigger()` makes something happen on chain and is
// repeated until the event arrives, since a listener may start after the first trigger.
async function waitEvent(what, ms, register, trigger, retriggerMs = 1500) {
  let resolve;
  let reject;
  const got = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  got.catch(() => {});
  const timer = setTimeout(() => reject(new OpFailed(`no ${what} within ${ms} ms`)), ms);
  let teardown = null;
  let done = false;
  let triggering = Promise.resolve();
  got
    .finally(() => {
      done = true;
    })
    .catch(() => {});
  try {
    teardown = await register(resolve, reject);
    triggering = (async () => {
      while (!done) {
        await trigger();
        await Promise.race([got, new Promise((res) => setTimeout(res, retriggerMs))]).catch(() => {});
      }
    })();
    triggering.catch(reject);
    return await got;
  } finally {
    clearTimeout(timer);
    done = true;
    // a trigger still in flight would race the next operation for the sender's nonce
    await triggering.catch(() => {});
    if (teardown) await Promise.resolve().then(teardown).catch(() => {});
  }
}

// Opens and closes a WebSocket to fail fast, with the server's answer, where a library
// would wait forever for a connection that never opens.
function probeWebSocket(url, ms) {
  const WebSocket = createRequire(tools.resolve('ethers'))('ws');
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url);
    const timer = setTimeout(() => {
      socket.terminate();
      reject(new OpFailed(`WebSocket ${url}: no connection within ${ms} ms`));
    }, ms);
    socket.on('open', () => {
      clearTimeout(timer);
      socket.close();
      resolve();
    });
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(new OpFailed(`WebSocket ${url}: ${error.message}`));
    });
  });
}

function jsonSafe(value) {
  return JSON.stringify(value, (_, v) => (typeof v === 'bigint' ? v.toString() : v));
}

async function runOps(ops, args, cleanup) {
  // stdout carries only the result lines; libraries log to the console (ethers does on filter errors)
  console.log = (...items) => process.stderr.write(`${require('node:util').format(...items)}\n`);
  process.on('unhandledRejection', (error) => process.stderr.write(`unhandled rejection: ${describe(error)}\n`));
  process.on('uncaughtException', (error) => process.stderr.write(`uncaught exception: ${describe(error)}\n`));
  const names = new Set();
  for (const [name] of ops) {
    if (names.has(name)) throw new Error(`duplicate operation ${name}`);
    names.add(name);
  }
  for (const [name, op] of ops) {
    if (args.only && !args.only.has(name)) continue;
    const started = Date.now();
    let ok = false;
    let detail = '';
    try {
      const result = await withTimeout(Promise.resolve().then(op), args.timeoutMs);
      ok = true;
      detail = result === undefined ? '' : jsonSafe(result).slice(0, 300);
    } catch (error) {
      detail = describe(error);
    }
    process.stdout.write(`${JSON.stringify({ name, ok, detail, ms: Date.now() - started })}\n`);
  }
  await withTimeout(Promise.resolve().then(cleanup), 5000).catch(() => {});
  process.exit(0);
}

// A fresh address that nothing has touched.
function randomAddress() {
  return `0x${require('node:crypto').randomBytes(20).toString('hex')}`;
}

// Runtime code that returns BALANCE(who) as one word, to test state overrides of code and balance.
function balanceProbeCode(who) {
  return `0x73${who.slice(2).toLowerCase()}3160005260206000f3`;
}

module.exports = {
  tools,
  OpFailed,
  check,
  parseArgs,
  describe,
  Fixtures,
  waitEvent,
  probeWebSocket,
  runOps,
  randomAddress,
  balanceProbeCode,
};

'use strict';
// viem v2 against one chain: node tests/clients/viem_ops.js --rpc URL --ws URL --key HEX
// --artifact FILE --chain-id N [--only a,b] [--timeout-ms MS] [--event-ms MS].
// Prints one JSON line per operation; see _harness.js.

const h = require('./_harness.js');

const { check } = h;
const viem = h.tools('viem');
const { privateKeyToAccount } = h.tools('viem/accounts');

// viem wraps a revert several times; the innermost ContractFunctionRevertedError holds the decoded error
function revertOf(error) {
  const found = error && error.walk ? error.walk((e) => e instanceof viem.ContractFunctionRevertedError) : null;
  return found && found.data ? { name: found.data.errorName, args: found.data.args || [] } : null;
}

async function expectRevert(promise, name) {
  try {
    await promise;
  } catch (error) {
    const revert = revertOf(error);
    check(revert, `no decoded revert: ${h.describe(error)}`);
    check(revert.name === name, `decoded ${revert.name}, expected ${name}`);
    return revert;
  }
  throw new h.OpFailed(`expected a ${name} revert, the call succeeded`);
}

async function main() {
  const args = h.parseArgs(process.argv.slice(2));
  const { abi, bytecode, deployedBytecode } = args.artifact;
  const chain = viem.defineChain({
    id: args.chainId,
    name: 'under-test',
    nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
    rpcUrls: { default: { http: [args.rpc], webSocket: [args.ws] } },
  });
  const account = privateKeyToAccount(args.key);
  const me = account.address;
  const client = viem.createPublicClient({ chain, transport: viem.http(args.rpc), pollingInterval: 100, cacheTime: 0 });
  const wallet = viem.createWalletClient({ account, chain, transport: viem.http(args.rpc), pollingInterval: 100 });
  const sockets = [];
  const receiptOf = (hash) => client.waitForTransactionReceipt({ hash, pollingInterval: 100, timeout: args.timeoutMs });

  const transfer = async (extra = {}) => {
    const hash = await wallet.sendTransaction({ to: h.randomAddress(), value: 1000n, ...extra });
    const receipt = await receiptOf(hash);
    check(receipt.status === 'success', `status ${receipt.status}`);
    return { hash, receipt };
  };
  const addVehicle = async (registry, who = h.randomAddress()) => {
    const hash = await wallet.writeContract({ address: registry.address, abi, functionName: 'addVehicle', args: [who] });
    return { account: who, hash, receipt: await receiptOf(hash) };
  };
  const socketClient = async () => {
    await h.probeWebSocket(args.ws, 3000);
    const transport = viem.webSocket(args.ws, { retryCount: 0 });
    const ws = viem.createPublicClient({ chain, transport, pollingInterval: 100 });
    sockets.push(ws);
    return ws;
  };

  const fx = new h.Fixtures({
    async registry() {
      const hash = await wallet.deployContract({ abi, bytecode });
      const receipt = await receiptOf(hash);
      check(receipt.status === 'success' && receipt.contractAddress, 'deployment failed');
      return { address: receipt.contractAddress, receipt };
    },
    async vehicle() {
      return addVehicle(await fx.need('registry'));
    },
    async transfer() {
      const block = await client.getBlock();
      const before = {
        number: block.number,
        balance: await client.getBalance({ address: me, blockNumber: block.number }),
        nonce: await client.getTransactionCount({ address: me, blockNumber: block.number }),
      };
      return { before, ...(await transfer()) };
    },
    async minedRevert() {
      const registry = await fx.need('registry');
      const vehicle = await fx.need('vehicle');
      // a fixed gas limit, so the transaction is mined (and reverts) instead of failing estimation
      const hash = await wallet.writeContract({
        address: registry.address, abi, functionName: 'addVehicle', args: [vehicle.account], gas: 300000n,
      });
      return { hash, receipt: await receiptOf(hash), tx: await client.getTransaction({ hash }) };
    },
  });

  // `watch(onLogs, onError)` starts a watcher and returns its unwatch; vehicles are added until one is seen.
  const seeMemberAdded = async (what, watch) => {
    const registry = await fx.need('registry');
    const added = new Set();
    return h.waitEvent(
      what,
      args.eventMs,
      (resolve, reject) =>
        watch(registry, (logs) => {
          const hit = logs.find((log) => log.eventName === 'MemberAdded' && added.has(log.args.account.toLowerCase()));
          if (hit) resolve({ account: hit.args.account, block: hit.blockNumber });
        }, reject),
      async () => {
        // noted before sending: a subscription may deliver the log before the receipt arrives
        const who = h.randomAddress();
        added.add(who);
        await addVehicle(registry, who);
      },
    );
  };
  const seeBlock = async (what, source, watchName) => {
    const start = await client.getBlockNumber();
    return h.waitEvent(
      what,
      args.eventMs,
      (resolve, reject) => {
        const onBlock = (block) => {
          const number = typeof block === 'bigint' ? block : block.number;
          if (number > start) resolve({ number });
        };
        return source[watchName]({ onBlock, onBlockNumber: onBlock, onError: reject, emitOnBegin: false });
      },
      () => transfer(),
    );
  };
  const seePending = (what, source, poll) => {
    const sent = new Set();
    return h.waitEvent(
      what,
      args.eventMs,
      (resolve, reject) =>
        source.watchPendingTransactions({
          poll,
          onTransactions: (hashes) => {
            const hit = hashes.find((hash) => sent.has(hash));
            if (hit) resolve({ hash: hit });
          },
          onError: reject,
        }),
      async () => {
        const signed = await wallet.signTransaction(await wallet.prepareTransactionRequest({ to: h.randomAddress(), value: 1n }));
        sent.add(viem.keccak256(signed));
        await receiptOf(await client.sendRawTransaction({ serializedTransaction: signed }));
      },
    );
  };
  // A filter's changes after a transaction: `make()` installs the filter, `changed(changes)` checks them.
  const filterChanges = async (make, trigger, changed) => {
    const filter = await make();
    try {
      await client.getFilterChanges({ filter });
      const triggered = await trigger();
      // a node may publish to filters a moment after the receipt is readable (anvil does): poll a while
      const changes = [];
      for (let i = 0; i < 20 && !changed(changes, triggered); i++) {
        if (i) await new Promise((resolve) => setTimeout(resolve, 100));
        changes.push(...(await client.getFilterChanges({ filter })));
      }
      check(changed(changes, triggered), `changes: ${h.describe(changes.length)} entries`);
      return changes.length;
    } finally {
      await client.uninstallFilter({ filter }).catch(() => {});
    }
  };

  const ops = [
    ['getChainId', async () => {
      const id = await client.getChainId();
      check(id === args.chainId, `chain id ${id}`);
      return id;
    }],
    ['getBlockNumber', async () => client.getBlockNumber()],
    ['getBlock latest', async () => {
      const block = await client.getBlock();
      check(block.hash && block.parentHash && block.baseFeePerGas !== null, 'incomplete block');
      return { number: block.number, gasLimit: block.gasLimit };
    }],
    ['getBlock genesis (0)', async () => {
      const block = await client.getBlock({ blockNumber: 0n });
      check(block.number === 0n, `number ${block.number}`);
    }],
    ['getBlock by hash', async () => {
      const latest = await client.getBlock();
      const block = await client.getBlock({ blockHash: latest.hash });
      check(block.number === latest.number, 'a different block');
    }],
    ['getBlock includeTransactions', async () => {
      const { receipt } = await fx.need('transfer');
      const block = await client.getBlock({ blockNumber: receipt.blockNumber, includeTransactions: true });
      check(block.transactions.some((tx) => tx.hash === receipt.transactionHash), 'the transaction is not in its block');
    }],
    ['getBlock finalized', async () => {
      const block = await client.getBlock({ blockTag: 'finalized' });
      check(block.number >= 0n, 'no finalized block');
    }],
    ['getBlockTransactionCount', async () => {
      const { receipt } = await fx.need('transfer');
      const count = await client.getBlockTransactionCount({ blockNumber: receipt.blockNumber });
      check(count >= 1, `count ${count}`);
    }],
    ['getBlockReceipts', async () => {
      const { receipt } = await fx.need('transfer');
      const receipts = await client.getBlockReceipts({ blockNumber: receipt.blockNumber });
      check(receipts.some((r) => r.transactionHash === receipt.transactionHash), 'the receipt is missing');
    }],
    ['getTransaction by block number and index', async () => {
      const { receipt } = await fx.need('transfer');
      const tx = await client.getTransaction({ blockNumber: receipt.blockNumber, index: receipt.transactionIndex });
      check(tx.hash === receipt.transactionHash, 'a different transaction');
    }],
    ['getTransaction by block hash and index', async () => {
      const { receipt } = await fx.need('transfer');
      const tx = await client.getTransaction({ blockHash: receipt.blockHash, index: receipt.transactionIndex });
      check(tx.hash === receipt.transactionHash, 'a different transaction');
    }],
    ['getBalance', async () => {
      const balance = await client.getBalance({ address: me });
      check(balance > 0n, 'the key is not funded');
      return balance;
    }],
    ['getTransactionCount', async () => client.getTransactionCount({ address: me })],
    ['getGasPrice', async () => client.getGasPrice()],
    ['estimateFeesPerGas (EIP-1559)', async () => {
      const fees = await client.estimateFeesPerGas();
      check(fees.maxFeePerGas > 0n, 'no max fee');
      return fees;
    }],
    ['estimateMaxPriorityFeePerGas', async () => client.estimateMaxPriorityFeePerGas()],
    ['getFeeHistory', async () => {
      const history = await client.getFeeHistory({ blockCount: 2, rewardPercentiles: [25, 75] });
      check(history.baseFeePerGas.length >= 2 && Array.isArray(history.reward), 'short history');
    }],
    ['estimateGas transfer', async () => {
      const gas = await client.estimateGas({ account: me, to: h.randomAddress(), value: 1n });
      check(gas === 21000n, `estimated ${gas}`);
    }],
    ['sendTransaction EIP-1559 and wait', async () => {
      const { receipt } = await transfer();
      check(receipt.type === 'eip1559', `type ${receipt.type}`);
    }],
    ['sendTransaction legacy', async () => {
      const { receipt } = await transfer({ type: 'legacy' });
      check(receipt.type === 'legacy', `type ${receipt.type}`);
    }],
    ['sendTransaction EIP-2930', async () => {
      const { receipt } = await transfer({ type: 'eip2930', accessList: [] });
      check(receipt.type === 'eip2930', `type ${receipt.type}`);
    }],
    ['sendRawTransaction (signed locally)', async () => {
      const request = await wallet.prepareTransactionRequest({ to: h.randomAddress(), value: 1n });
      const hash = await client.sendRawTransaction({ serializedTransaction: await wallet.signTransaction(request) });
      check((await receiptOf(hash)).status === 'success', 'failed');
    }],
    ['getTransaction (mined)', async () => {
      const { hash, receipt } = await fx.need('transfer');
      const tx = await client.getTransaction({ hash });
      check(tx.blockNumber === receipt.blockNumber && tx.from.toLowerCase() === me.toLowerCase(), 'wrong transaction');
    }],
    ['getTransactionReceipt', async () => {
      const { hash } = await fx.need('transfer');
      const receipt = await client.getTransactionReceipt({ hash });
      check(receipt.status === 'success' && receipt.gasUsed === 21000n, 'wrong receipt');
    }],
    ['getTransactionConfirmations', async () => {
      const { hash } = await fx.need('transfer');
      const confirmations = await client.getTransactionConfirmations({ hash });
      check(confirmations >= 1n, `confirmations ${confirmations}`);
    }],
    ['a refused transaction shows the node\'s reason', async () => {
      const { generatePrivateKey } = h.tools('viem/accounts');
      const stranger = privateKeyToAccount(generatePrivateKey());
      const other = viem.createWalletClient({ account: stranger, chain, transport: viem.http(args.rpc) });
      try {
        await other.sendTransaction({ to: h.randomAddress(), value: 0n, gas: 21000n, nonce: 0,
          maxFeePerGas: 10n ** 10n, maxPriorityFeePerGas: 10n ** 9n });
      } catch (error) {
        const server = error.details || (error.cause && error.cause.details);
        check(server, `no server error kept: ${h.describe(error)}`);
        check(error.message.includes(server), `the reason is not in the message: ${error.message.slice(0, 300)}`);
        return server;
      }
      throw new h.OpFailed('a transaction from an unfunded stranger was accepted');
    }],
    ['getTransaction of a pending tx (nonce gap)', async () => {
      const nonce = await client.getTransactionCount({ address: me, blockTag: 'pending' });
      const queued = await wallet.sendTransaction({ to: h.randomAddress(), value: 1n, nonce: nonce + 1 });
      let seen = null;
      try {
        seen = await client.getTransaction({ hash: queued });
      } finally {
        // fill the gap whatever was seen, so later operations find a clean nonce
        await receiptOf(await wallet.sendTransaction({ to: h.randomAddress(), value: 1n, nonce }));
        await receiptOf(queued);
      }
      check(seen.hash === queued && seen.blockNumber === null, `blockNumber ${seen.blockNumber}`);
    }],
    ['deployContract', async () => {
      const registry = await fx.need('registry');
      return registry.address;
    }],
    ['getCode', async () => {
      const registry = await fx.need('registry');
      const code = await client.getCode({ address: registry.address });
      check(code.toLowerCase() === deployedBytecode.toLowerCase(), `code of ${code && code.length} chars`);
    }],
    ['getStorageAt (admin slot)', async () => {
      const registry = await fx.need('registry');
      const word = await client.getStorageAt({ address: registry.address, slot: '0x0' });
      check(viem.getAddress(viem.sliceHex(word, 12)) === me, `slot 0 = ${word}`);
    }],
    ['readContract (admin)', async () => {
      const registry = await fx.need('registry');
      const admin = await client.readContract({ address: registry.address, abi, functionName: 'admin' });
      check(admin === me, `admin ${admin}`);
    }],
    ['simulateContract then writeContract', async () => {
      const registry = await fx.need('registry');
      const { request } = await client.simulateContract({
        account, address: registry.address, abi, functionName: 'addVehicle', args: [h.randomAddress()],
      });
      const receipt = await receiptOf(await wallet.writeContract(request));
      check(receipt.status === 'success', `status ${receipt.status}`);
    }],
    ['writeContract and event from receipt (parseEventLogs)', async () => {
      const { account: who, receipt } = await fx.need('vehicle');
      const events = viem.parseEventLogs({ abi, logs: receipt.logs, eventName: 'MemberAdded' });
      check(events.length === 1 && events[0].args.account.toLowerCase() === who, `${events.length} events`);
    }],
    ['estimateContractGas', async () => {
      const registry = await fx.need('registry');
      const gas = await client.estimateContractGas({
        account, address: registry.address, abi, functionName: 'addVehicle', args: [h.randomAddress()],
      });
      check(gas > 21000n, `estimated ${gas}`);
    }],
    ['custom error from simulateContract (AlreadyMember)', async () => {
      const registry = await fx.need('registry');
      const { account: who } = await fx.need('vehicle');
      const revert = await expectRevert(client.simulateContract({
        account, address: registry.address, abi, functionName: 'addVehicle', args: [who],
      }), 'AlreadyMember');
      check(revert.args[0].toLowerCase() === who, `args ${revert.args}`);
    }],
    ['custom error from readContract by another caller (NotAdmin)', async () => {
      const registry = await fx.need('registry');
      const stranger = viem.getAddress(h.randomAddress());
      const revert = await expectRevert(client.readContract({
        account: stranger, address: registry.address, abi, functionName: 'addVehicle', args: [h.randomAddress()],
      }), 'NotAdmin');
      check(revert.args[0] === stranger, `args ${revert.args}`);
    }],
    ['custom error from estimateContractGas (ZeroAddress)', async () => {
      const registry = await fx.need('registry');
      await expectRevert(client.estimateContractGas({
        account, address: registry.address, abi, functionName: 'addVehicle', args: [viem.zeroAddress],
      }), 'ZeroAddress');
    }],
    ['mined revert: receipt status reverted', async () => {
      const { receipt } = await fx.need('minedRevert');
      check(receipt.status === 'reverted', `status ${receipt.status}`);
    }],
    ['mined revert: custom error replayed at its parent block', async () => {
      const { tx, receipt } = await fx.need('minedRevert');
      try {
        await client.call({ account: tx.from, to: tx.to, data: tx.input, blockNumber: receipt.blockNumber - 1n });
      } catch (error) {
        const raw = error.walk((e) => typeof e.data === 'string');
        check(raw, `no revert data: ${h.describe(error)}`);
        const decoded = viem.decodeErrorResult({ abi, data: raw.data });
        check(decoded.errorName === 'AlreadyMember', `decoded ${decoded.errorName}`);
        return decoded.errorName;
      }
      throw new h.OpFailed('the replay did not revert');
    }],
    ['getLogs (event and indexed arg)', async () => {
      const registry = await fx.need('registry');
      const { account: who, receipt } = await fx.need('vehicle');
      const logs = await client.getLogs({
        address: registry.address,
        event: viem.getAbiItem({ abi, name: 'MemberAdded' }),
        args: { account: who },
        fromBlock: receipt.blockNumber,
        toBlock: receipt.blockNumber,
      });
      check(logs.length === 1 && logs[0].transactionHash === receipt.transactionHash, `${logs.length} logs`);
    }],
    ['getContractEvents over a block range', async () => {
      const registry = await fx.need('registry');
      await fx.need('vehicle');
      const events = await client.getContractEvents({ address: registry.address, abi, fromBlock: registry.receipt.blockNumber });
      const names = new Set(events.map((e) => e.eventName));
      check(names.has('AdminTransferred') && names.has('MemberAdded'), `events ${[...names]}`);
    }],
    ['getLogs by blockHash', async () => {
      const registry = await fx.need('registry');
      const { receipt } = await fx.need('vehicle');
      const logs = await client.getLogs({ address: registry.address, blockHash: receipt.blockHash });
      check(logs.length === 1, `${logs.length} logs`);
    }],
    ['createContractEventFilter + getFilterChanges', async () => {
      const registry = await fx.need('registry');
      return filterChanges(
        () => client.createContractEventFilter({ address: registry.address, abi, eventName: 'MemberAdded' }),
        async () => (await addVehicle(registry)).account,
        (changes, who) => changes.some((log) => log.args.account.toLowerCase() === who),
      );
    }],
    ['createEventFilter + getFilterLogs', async () => {
      const registry = await fx.need('registry');
      const { account: who, receipt } = await fx.need('vehicle');
      const filter = await client.createEventFilter({
        address: registry.address,
        event: viem.getAbiItem({ abi, name: 'MemberAdded' }),
        fromBlock: receipt.blockNumber,
        toBlock: receipt.blockNumber,
      });
      try {
        const logs = await client.getFilterLogs({ filter });
        check(logs.length === 1 && logs[0].args.account.toLowerCase() === who, `${logs.length} logs`);
      } finally {
        await client.uninstallFilter({ filter }).catch(() => {});
      }
    }],
    ['createBlockFilter + getFilterChanges', async () =>
      filterChanges(
        () => client.createBlockFilter(),
        async () => (await transfer()).receipt.blockHash,
        (changes, blockHash) => changes.includes(blockHash),
      )],
    ['createPendingTransactionFilter + getFilterChanges', async () =>
      filterChanges(
        () => client.createPendingTransactionFilter(),
        async () => (await transfer()).hash,
        (changes, hash) => changes.includes(hash),
      )],
    ['uninstallFilter', async () => {
      const filter = await client.createBlockFilter();
      check((await client.uninstallFilter({ filter })) === true, 'not uninstalled');
    }],
    ['watchContractEvent over HTTP (polling)', async () =>
      seeMemberAdded('MemberAdded event', (registry, onLogs, onError) => client.watchContractEvent({
        address: registry.address, abi, eventName: 'MemberAdded', onLogs, onError, poll: true, pollingInterval: 100,
      }))],
    ['watchBlockNumber over HTTP (polling)', async () => seeBlock('new block number', client, 'watchBlockNumber')],
    ['WebSocket: getChainId', async () => {
      const ws = await socketClient();
      check((await ws.getChainId()) === args.chainId, 'wrong chain id');
    }],
    ['WebSocket: watchBlocks (newHeads)', async () => seeBlock('newHeads', await socketClient(), 'watchBlocks')],
    ['WebSocket: watchContractEvent (logs subscription)', async () => {
      const ws = await socketClient();
      return seeMemberAdded('MemberAdded over WebSocket', (registry, onLogs, onError) => ws.watchContractEvent({
        address: registry.address, abi, eventName: 'MemberAdded', onLogs, onError,
      }));
    }],
    ['WebSocket: watchPendingTransactions', async () => seePending('pending tx over WebSocket', await socketClient(), false)],
    ['getBalance at an older block', async () => {
      const { before } = await fx.need('transfer');
      const then = await client.getBalance({ address: me, blockNumber: before.number });
      const now = await client.getBalance({ address: me });
      check(then === before.balance && now !== then, `then ${then}, recorded ${before.balance}`);
    }],
    ['getTransactionCount at an older block', async () => {
      const { before } = await fx.need('transfer');
      const then = await client.getTransactionCount({ address: me, blockNumber: before.number });
      check(then === before.nonce, `then ${then}, recorded ${before.nonce}`);
    }],
    ['readContract at an older block', async () => {
      const registry = await fx.need('registry');
      const { account: who, receipt } = await fx.need('vehicle');
      const read = (blockNumber) =>
        client.readContract({ address: registry.address, abi, functionName: 'roleOf', args: [who], blockNumber });
      const [then, now] = [await read(receipt.blockNumber - 1n), await read(undefined)];
      check(then === 0 && now !== 0, `role then ${then}, now ${now}`);
    }],
    ['getCode before the deployment block', async () => {
      const registry = await fx.need('registry');
      const code = await client.getCode({ address: registry.address, blockNumber: registry.receipt.blockNumber - 1n });
      check(code === undefined, `code ${code}`);
    }],
    ['call with state overrides (balance, code)', async () => {
      const [who, probe] = [h.randomAddress(), h.randomAddress()];
      const { data } = await client.call({
        to: probe,
        stateOverride: [
          { address: who, balance: 123456789n },
          { address: probe, code: h.balanceProbeCode(who) },
        ],
      });
      check(data && BigInt(data) === 123456789n, `returned ${data}`);
    }],
  ];

  await h.runOps(ops, args, async () => {
    for (const ws of sockets) await ws.transport.getRpcClient().then((rpc) => rpc.close()).catch(() => {});
  });
}

main().catch((error) => {
  process.stderr.write(`${h.describe(error)}\n`);
  process.exit(2);
});

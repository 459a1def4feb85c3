'use strict';
// ethers v6 against one chain: node tests/clients/ethers_ops.js --rpc URL --ws URL --key HEX
// --artifact FILE --chain-id N [--only a,b] [--timeout-ms MS] [--event-ms MS].
// Prints one JSON line per operation; see _harness.js.

const h = require('./_harness.js');

const { check } = h;
const ethers = h.tools('ethers');

function revertOf(error) {
  // ethers decodes a custom error into error.revert when the contract's ABI knows it
  return error && error.revert ? { name: error.revert.name, args: error.revert.args.toArray() } : null;
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
  const network = new ethers.Network('under-test', args.chainId);
  const options = { staticNetwork: network, pollingInterval: 100, cacheTimeout: -1 };
  const provider = new ethers.JsonRpcProvider(args.rpc, network, options);
  const wallet = new ethers.Wallet(args.key, provider);
  const me = wallet.address;
  const iface = new ethers.Interface(abi);
  const sockets = [];

  const transfer = async (overrides = {}) => {
    const tx = await wallet.sendTransaction({ to: h.randomAddress(), value: 1000n, ...overrides });
    const receipt = await tx.wait(1, args.timeoutMs);
    check(receipt.status === 1, `status ${receipt.status}`);
    return { tx, receipt };
  };
  const addVehicle = async (registry, account = h.randomAddress()) => {
    const tx = await registry.contract.addVehicle(account);
    return { account, tx, receipt: await tx.wait(1, args.timeoutMs) };
  };
  const socket = async () => {
    await h.probeWebSocket(args.ws, 3000);
    const ws = new ethers.WebSocketProvider(args.ws, network, { staticNetwork: network });
    sockets.push(ws);
    return ws;
  };

  const fx = new h.Fixtures({
    async registry() {
      const factory = new ethers.ContractFactory(abi, bytecode, wallet);
      const contract = await factory.deploy();
      const receipt = await contract.deploymentTransaction().wait(1, args.timeoutMs);
      return { contract, address: await contract.getAddress(), receipt };
    },
    async vehicle() {
      return addVehicle(await fx.need('registry'));
    },
    async transfer() {
      const block = await provider.getBlock('latest');
      const before = {
        number: block.number,
        hash: block.hash,
        balance: await provider.getBalance(me, block.number),
        nonce: await provider.getTransactionCount(me, block.number),
      };
      return { before, ...(await transfer()) };
    },
    async minedRevert() {
      const registry = await fx.need('registry');
      const vehicle = await fx.need('vehicle');
      // a fixed gas limit, so the transaction is mined (and reverts) instead of failing estimation
      const tx = await registry.contract.addVehicle(vehicle.account, { gasLimit: 300000 });
      try {
        await tx.wait(1, args.timeoutMs);
      } catch (error) {
        if (error.code === 'CALL_EXCEPTION' && error.receipt) return { tx, receipt: error.receipt, error };
        throw error;
      }
      throw new h.OpFailed('the reverting transaction succeeded');
    },
  });

  // Subscribes `subscribe(listener)` to MemberAdded, adds vehicles until one is seen.
  const seeMemberAdded = async (what, contract, registry) => {
    const added = new Set();
    return h.waitEvent(
      what,
      args.eventMs,
      async (resolve) => {
        const listener = (account, role, event) => {
          if (added.has(account.toLowerCase())) resolve({ account, role, block: event.log.blockNumber });
        };
        await contract.on('MemberAdded', listener);
        return () => contract.off('MemberAdded', listener);
      },
      async () => {
        // noted before sending: a subscription may deliver the log before the receipt arrives
        const account = h.randomAddress();
        added.add(account);
        await addVehicle(registry, account);
      },
    );
  };
  const seeBlock = (what, source) =>
    h.waitEvent(
      what,
      args.eventMs,
      async (resolve) => {
        const start = await provider.getBlockNumber();
        const listener = (number) => {
          if (number > start) resolve({ number });
        };
        await source.on('block', listener);
        return () => source.off('block', listener);
      },
      () => transfer(),
    );
  const seePending = (what, source) => {
    const sent = new Set();
    return h.waitEvent(
      what,
      args.eventMs,
      async (resolve) => {
        const listener = (hash) => {
          if (sent.has(hash)) resolve({ hash });
        };
        await source.on('pending', listener);
        return () => source.off('pending', listener);
      },
      async () => {
        const signed = await wallet.signTransaction(await wallet.populateTransaction({ to: h.randomAddress(), value: 1n }));
        sent.add(ethers.keccak256(signed));
        await (await provider.broadcastTransaction(signed)).wait(1, args.timeoutMs);
      },
    );
  };

  const ops = [
    ['chain id (network detection)', async () => {
      const fresh = new ethers.JsonRpcProvider(args.rpc);
      try {
        const detected = await fresh.getNetwork();
        check(detected.chainId === BigInt(args.chainId), `chain id ${detected.chainId}`);
        return Number(detected.chainId);
      } finally {
        fresh.destroy();
      }
    }],
    ['getBlockNumber', async () => {
      const number = await provider.getBlockNumber();
      check(Number.isInteger(number) && number >= 0, `block number ${number}`);
      return number;
    }],
    ['getBlock latest', async () => {
      const block = await provider.getBlock('latest');
      check(block && ethers.isHexString(block.hash, 32) && ethers.isHexString(block.parentHash, 32), 'no block');
      return { number: block.number, gasLimit: block.gasLimit, baseFeePerGas: block.baseFeePerGas };
    }],
    ['getBlock genesis (0)', async () => {
      const block = await provider.getBlock(0);
      check(block && block.number === 0, 'no genesis block');
      return block.hash;
    }],
    ['getBlock by hash', async () => {
      const latest = await provider.getBlock('latest');
      const block = await provider.getBlock(latest.hash);
      check(block && block.number === latest.number && block.hash === latest.hash, 'a different block');
    }],
    ['getBlock with transactions', async () => {
      const { receipt } = await fx.need('transfer');
      const block = await provider.getBlock(receipt.blockNumber, true);
      const txs = block.prefetchedTransactions;
      check(txs.some((tx) => tx.hash === receipt.hash), 'the transaction is not in its block');
      return txs.length;
    }],
    ['getBlock finalized', async () => {
      const block = await provider.getBlock('finalized');
      check(block && block.number >= 0, 'no finalized block');
      return block.number;
    }],
    ['getBalance', async () => {
      const balance = await provider.getBalance(me);
      check(balance > 0n, 'the key is not funded');
      return balance;
    }],
    ['getTransactionCount latest', async () => provider.getTransactionCount(me, 'latest')],
    ['getTransactionCount pending', async () => {
      const [latest, pending] = [await provider.getTransactionCount(me, 'latest'), await provider.getTransactionCount(me, 'pending')];
      check(pending >= latest, `pending ${pending} < latest ${latest}`);
      return pending;
    }],
    ['getFeeData (EIP-1559)', async () => {
      const fees = await provider.getFeeData();
      check(fees.gasPrice !== null && fees.maxFeePerGas !== null && fees.maxPriorityFeePerGas !== null, 'missing fee data');
      return fees.toJSON();
    }],
    ['estimateGas transfer', async () => {
      const gas = await provider.estimateGas({ from: me, to: h.randomAddress(), value: 1n });
      check(gas === 21000n, `estimated ${gas}`);
      return gas;
    }],
    ['send EIP-1559 transfer and wait', async () => {
      const { receipt } = await transfer();
      check(receipt.type === 2, `type ${receipt.type}`);
      return receipt.blockNumber;
    }],
    ['send legacy transfer (type 0)', async () => {
      const { tx } = await transfer({ type: 0 });
      check(tx.type === 0 && tx.gasPrice > 0n, `type ${tx.type}`);
    }],
    ['send EIP-2930 transfer (type 1)', async () => {
      const { tx } = await transfer({ type: 1, accessList: [] });
      check(tx.type === 1, `type ${tx.type}`);
    }],
    ['broadcastTransaction (signed raw)', async () => {
      const request = await wallet.populateTransaction({ to: h.randomAddress(), value: 1n });
      const tx = await provider.broadcastTransaction(await wallet.signTransaction(request));
      const receipt = await tx.wait(1, args.timeoutMs);
      check(receipt.status === 1, `status ${receipt.status}`);
    }],
    ['getTransaction (mined)', async () => {
      const { receipt } = await fx.need('transfer');
      const tx = await provider.getTransaction(receipt.hash);
      check(tx && tx.blockNumber === receipt.blockNumber && tx.from === me, 'not found or wrong block');
    }],
    ['getTransactionReceipt', async () => {
      const { receipt } = await fx.need('transfer');
      const got = await provider.getTransactionReceipt(receipt.hash);
      check(got && got.status === 1 && got.gasUsed === 21000n && got.blockHash === receipt.blockHash, 'wrong receipt');
    }],
    ['waitForTransaction', async () => {
      const { receipt } = await fx.need('transfer');
      const got = await provider.waitForTransaction(receipt.hash, 1, args.eventMs);
      check(got && got.hash === receipt.hash, 'no receipt');
    }],
    ['a refused transaction shows the node\'s reason', async () => {
      // an unfunded stranger: anvil refuses it for funds, a permissioned node for permission
      const stranger = ethers.Wallet.createRandom().connect(provider);
      const tx = { to: h.randomAddress(), value: 0n, gasLimit: 21000n, nonce: 0, chainId: args.chainId, type: 2,
        maxFeePerGas: 10n ** 10n, maxPriorityFeePerGas: 10n ** 9n };
      try {
        await stranger.sendTransaction(tx);
      } catch (error) {
        const server = (error.error && error.error.message) || (error.info && error.info.error && error.info.error.message);
        check(server, `no server error kept: ${h.describe(error)}`);
        check(error.message.includes(server), `the reason is not in the message: ${error.message.slice(0, 300)}`);
        return server;
      }
      throw new h.OpFailed('a transaction from an unfunded stranger was accepted');
    }],
    ['getTransaction of a pending tx (nonce gap)', async () => {
      const nonce = await provider.getTransactionCount(me, 'pending');
      const queued = await wallet.sendTransaction({ to: h.randomAddress(), value: 1n, nonce: nonce + 1 });
      const seen = await provider.getTransaction(queued.hash);
      // fill the gap whatever was seen, so later operations find a clean nonce
      const filler = await wallet.sendTransaction({ to: h.randomAddress(), value: 1n, nonce });
      await filler.wait(1, args.timeoutMs);
      await queued.wait(1, args.timeoutMs);
      check(seen && seen.hash === queued.hash && seen.blockNumber === null, `seen: ${seen && seen.blockNumber}`);
    }],
    ['JSON-RPC batch of reads', async () => {
      const batched = await Promise.all([
        provider.getBlockNumber(),
        provider.getBalance(me),
        provider.getTransactionCount(me),
        provider.getCode(me),
        provider.send('eth_chainId', []),
      ]);
      check(BigInt(batched[4]) === BigInt(args.chainId) && batched[3] === '0x', 'inconsistent answers');
    }],
    ['deploy registry (ContractFactory)', async () => {
      const registry = await fx.need('registry');
      check(registry.receipt.status === 1 && registry.receipt.contractAddress === registry.address, 'bad receipt');
      return registry.address;
    }],
    ['getCode', async () => {
      const registry = await fx.need('registry');
      const code = await provider.getCode(registry.address);
      check(code.toLowerCase() === deployedBytecode.toLowerCase(), `code of ${code.length} chars`);
    }],
    ['getStorage (admin slot)', async () => {
      const registry = await fx.need('registry');
      const word = await provider.getStorage(registry.address, 0);
      check(ethers.getAddress(ethers.dataSlice(word, 12)) === me, `slot 0 = ${word}`);
    }],
    ['contract read (admin)', async () => {
      const registry = await fx.need('registry');
      check((await registry.contract.admin()) === me, 'admin differs');
    }],
    ['contract write and event from receipt', async () => {
      const registry = await fx.need('registry');
      const { account, receipt } = await fx.need('vehicle');
      const events = receipt.logs.map((log) => iface.parseLog(log)).filter((e) => e && e.name === 'MemberAdded');
      check(events.length === 1 && events[0].args.account.toLowerCase() === account, 'no MemberAdded');
      check((await registry.contract.roleOf(account)) !== 0n, 'role not set');
    }],
    ['estimateGas contract call', async () => {
      const registry = await fx.need('registry');
      const gas = await registry.contract.addVehicle.estimateGas(h.randomAddress());
      check(gas > 21000n, `estimated ${gas}`);
      return gas;
    }],
    ['custom error from staticCall (AlreadyMember)', async () => {
      const registry = await fx.need('registry');
      const { account } = await fx.need('vehicle');
      const revert = await expectRevert(registry.contract.addVehicle.staticCall(account), 'AlreadyMember');
      check(revert.args[0].toLowerCase() === account, `args ${revert.args}`);
    }],
    ['custom error from staticCall by another caller (NotAdmin)', async () => {
      const registry = await fx.need('registry');
      const stranger = new ethers.VoidSigner(ethers.getAddress(h.randomAddress()), provider);
      const contract = registry.contract.connect(stranger);
      const revert = await expectRevert(contract.addVehicle.staticCall(h.randomAddress()), 'NotAdmin');
      check(revert.args[0] === stranger.address, `args ${revert.args}`);
    }],
    ['custom error from estimateGas (ZeroAddress)', async () => {
      // the provider does not know the ABI: the revert data is decoded with the interface
      const registry = await fx.need('registry');
      try {
        await registry.contract.addVehicle.estimateGas(ethers.ZeroAddress);
      } catch (error) {
        check(error.data, `no revert data: ${h.describe(error)}`);
        const decoded = iface.parseError(error.data);
        check(decoded && decoded.name === 'ZeroAddress', `decoded ${decoded && decoded.name}`);
        return decoded.name;
      }
      throw new h.OpFailed('the estimate did not revert');
    }],
    ['mined revert: receipt status 0', async () => {
      const { receipt } = await fx.need('minedRevert');
      check(receipt.status === 0 && receipt.blockNumber > 0, `status ${receipt.status}`);
    }],
    ['mined revert: custom error replayed at its parent block', async () => {
      const { tx, receipt } = await fx.need('minedRevert');
      const call = { from: tx.from, to: tx.to, data: tx.data, blockTag: receipt.blockNumber - 1 };
      try {
        await provider.call(call);
      } catch (error) {
        check(error.data, `no revert data: ${h.describe(error)}`);
        const decoded = iface.parseError(error.data);
        check(decoded && decoded.name === 'AlreadyMember', `decoded ${decoded && decoded.name}`);
        return decoded.name;
      }
      throw new h.OpFailed('the replay did not revert');
    }],
    ['getLogs (queryFilter by indexed arg)', async () => {
      const registry = await fx.need('registry');
      const { account, receipt } = await fx.need('vehicle');
      const filter = registry.contract.filters.MemberAdded(account);
      const events = await registry.contract.queryFilter(filter, receipt.blockNumber, receipt.blockNumber);
      check(events.length === 1 && events[0].transactionHash === receipt.hash, `${events.length} events`);
    }],
    ['getLogs by blockHash', async () => {
      const registry = await fx.need('registry');
      const { receipt } = await fx.need('vehicle');
      const logs = await provider.getLogs({ blockHash: receipt.blockHash, address: registry.address });
      check(logs.length === 1 && logs[0].blockHash === receipt.blockHash, `${logs.length} logs`);
    }],
    ['getLogs over a block range (all events)', async () => {
      const registry = await fx.need('registry');
      await fx.need('vehicle');
      const events = await registry.contract.queryFilter('*', registry.receipt.blockNumber, 'latest');
      const names = new Set(events.map((e) => e.eventName));
      check(names.has('AdminTransferred') && names.has('MemberAdded'), `events ${[...names]}`);
      return events.length;
    }],
    ['contract.on over HTTP (eth_newFilter, or getLogs if none)', async () => {
      const registry = await fx.need('registry');
      return seeMemberAdded('MemberAdded event', registry.contract, registry);
    }],
    ['provider.on block over HTTP (polling)', async () => seeBlock('new block', provider)],
    ['provider.on pending over HTTP (pending tx filter)', async () => seePending('pending tx', provider)],
    ['WebSocket: eth_chainId', async () => {
      const ws = await socket();
      const id = await ws.send('eth_chainId', []);
      check(BigInt(id) === BigInt(args.chainId), `chain id ${id}`);
    }],
    ['WebSocket: on block (newHeads)', async () => seeBlock('newHeads', await socket())],
    ['WebSocket: contract.on (logs subscription)', async () => {
      const registry = await fx.need('registry');
      const ws = await socket();
      const contract = new ethers.Contract(registry.address, abi, ws);
      return seeMemberAdded('MemberAdded over WebSocket', contract, registry);
    }],
    ['WebSocket: on pending (newPendingTransactions)', async () => seePending('pending tx over WebSocket', await socket())],
    ['getBalance at an older block', async () => {
      const { before } = await fx.need('transfer');
      const [then, now] = [await provider.getBalance(me, before.number), await provider.getBalance(me)];
      check(then === before.balance && now !== then, `then ${then}, recorded ${before.balance}, now ${now}`);
    }],
    ['getBalance at a block hash', async () => {
      const { before } = await fx.need('transfer');
      const then = await provider.getBalance(me, before.hash);
      check(then === before.balance, `then ${then}, recorded ${before.balance}`);
    }],
    ['getTransactionCount at an older block', async () => {
      const { before } = await fx.need('transfer');
      const then = await provider.getTransactionCount(me, before.number);
      check(then === before.nonce && (await provider.getTransactionCount(me)) > then, `then ${then}`);
    }],
    ['contract read at an older block', async () => {
      const registry = await fx.need('registry');
      const { account, receipt } = await fx.need('vehicle');
      const then = await registry.contract.roleOf(account, { blockTag: receipt.blockNumber - 1 });
      const now = await registry.contract.roleOf(account);
      check(then === 0n && now !== 0n, `role then ${then}, now ${now}`);
    }],
    ['getCode before the deployment block', async () => {
      const registry = await fx.need('registry');
      const code = await provider.getCode(registry.address, registry.receipt.blockNumber - 1);
      check(code === '0x', `code ${code.slice(0, 20)}`);
    }],
  ];

  await h.runOps(ops, args, async () => {
    for (const ws of sockets) await ws.destroy();
    provider.destroy();
  });
}

main().catch((error) => {
  process.stderr.write(`${h.describe(error)}\n`);
  process.exit(2);
});

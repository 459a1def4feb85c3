"""Execution engines behind one interface: the eth-tester/py-evm reference and pyrevm."""

from node.engine.base import ExecutionEngine, ExecutionReceipt, LogEntry, Transaction

__all__ = ["ExecutionEngine", "ExecutionReceipt", "LogEntry", "Transaction"]

"""Wallet-API simulator for iGaming integrators: XPro, Fizzy Bubbly and AMBSlot dialects."""

__version__ = "0.1.0"

"""The BFT-replicated anchoring ledger: Merkle log, checkpoints, consensus, validators."""

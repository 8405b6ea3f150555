"""The notary service: ingest, index, anchoring, receipts and offline verification."""

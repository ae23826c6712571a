"""Registered losses of hggt_basicsr (explicit imports: one module per concept)."""

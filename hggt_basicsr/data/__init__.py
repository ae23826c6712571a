"""Registered data of hggt_basicsr (explicit imports: one module per concept)."""

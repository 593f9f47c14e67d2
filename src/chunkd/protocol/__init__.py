"""Pure protocol code: header parsing and encoding, no I/O."""

"""tus 1.0.0 wire format: constants, strict header parsers and the metadata codec."""

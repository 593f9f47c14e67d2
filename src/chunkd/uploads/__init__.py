"""The upload core: the record, the service owning every invariant, locking and expiry."""

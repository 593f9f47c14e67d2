"""The tus 1.0.0 adapter: one module per HTTP method, speaking to ``UploadService`` only."""

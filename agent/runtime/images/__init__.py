"""Images: the OCI image store, blobs, layers, archives, registry client, builds and commit."""

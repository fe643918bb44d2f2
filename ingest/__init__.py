"""Ingestion: loaders, chunking, embeddings and the versioned index."""

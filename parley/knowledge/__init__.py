"""The knowledge base: documents and Q&A pairs an application answers from.

parse (files to sections), split (sections to segments), index (vector and keyword index
seams), vectors (per-application vector indexes in step with the database), search (hybrid
search, reciprocal rank fusion), qa (Q&A pairs), labels (scopes), ingest (background
learning), settings (an application's knowledge settings), service (what the engine and the
faces call).
"""

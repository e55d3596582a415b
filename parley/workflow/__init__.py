"""Workflows: applications that answer by running a graph of nodes (docs/workflows.md).

- definition.py: the YAML format (pydantic models per node type) and its parsing;
- validate.py: the graph's rules (edges, cycles, references);
- runner.py: runs a definition, pausing for the user and resuming; events.py: what it reports;
- nodes/: one handler per node type; seams.py: the Protocols for models, knowledge, sandbox;
- sandbox.py: where code nodes run; dify.py: Dify DSL import; cli.py: `parley workflow ...`.
"""
